"""HTTP JPEG snapshot cameras, polled with httpx; and telling them apart from MJPEG.

A snapshot URL answers every GET with one ``image/jpeg``; an MJPEG URL answers
with an endless ``multipart/x-mixed-replace`` body. With ``kind: auto`` the reader
asks once (:func:`probe_http_kind`) and reads only the response headers.

Credentials in the URL are sent with digest auth when the camera asks for it
(most do) and with basic auth only when it asks for basic.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Generator
from typing import Any, Literal
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx

from server.cameras.errors import (
    BadFrame,
    SourceError,
    UntrustedCertificate,
    describe,
    untrusted_certificate,
)
from server.cameras.jpeg import jpeg_size
from server.cameras.policy import SourcePlan, check_host
from server.cameras.sources.base import JpegSample, Sample, Source
from server.cameras.sources.mjpeg import USER_AGENT
from server.cameras.tls import httpx_verify
from server.config import CameraSettings, SecuritySettings
from server.redact import redact_text

__all__ = ["HttpCameraClient", "SnapshotSource", "probe_http_kind"]

_MAX_IMAGE_BYTES = 32 << 20
_MULTIPART = "multipart/x-mixed-replace"


class _RedactFilter(logging.Filter):
    """httpx logs every request URL at INFO; camera URLs can carry credentials in the
    query (``?pwd=``), so its records are redacted before any handler sees them."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact_text(record.getMessage())
        record.args = ()
        return True


logging.getLogger("httpx").addFilter(_RedactFilter())


class HttpCameraClient:
    """An httpx client for one camera URL: timeouts, auth, and the network policy
    re-checked on every request (so a redirect cannot lead outside it)."""

    def __init__(
        self, plan: SourcePlan, settings: CameraSettings, security: SecuritySettings
    ) -> None:
        parts = urlsplit(plan.target)
        host = parts.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        if parts.port:
            netloc += f":{parts.port}"
        self.url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
        self.plan = plan
        self._user = unquote(parts.username or "")
        self._password = unquote(parts.password or "")
        self._auth: httpx.Auth | None = (
            httpx.DigestAuth(self._user, self._password) if parts.username else None
        )
        self._security = security
        hooks: dict[str, list[Any]] = (
            {"request": [self._guard]} if security.allowed_networks else {}
        )
        self._open_timeout = settings.open_timeout
        self._client = httpx.Client(
            follow_redirects=True,
            max_redirects=3,
            headers={"User-Agent": USER_AGENT},
            event_hooks=hooks,
            trust_env=False,
            verify=httpx_verify(settings),
        )

    def _guard(self, request: httpx.Request) -> None:
        port = request.url.port or (443 if request.url.scheme == "https" else 80)
        hop = SourcePlan(kind="http", target="", where="", host=request.url.host, port=port)
        check_host(hop, self._security)

    def get(self, *, stream: bool, timeout: float) -> httpx.Response:
        """GET the camera URL (headers only when ``stream``), waiting at most ``timeout``
        for each read; falls back from digest to basic auth if that is what the camera
        asks for. Raises httpx errors or :class:`SourceError`."""
        limits = httpx.Timeout(timeout, connect=self._open_timeout)
        request = self._client.build_request("GET", self.url, timeout=limits)
        response = self._client.send(request, auth=self._auth, stream=stream)
        challenge = response.headers.get("www-authenticate", "").lower()
        if (
            response.status_code == 401
            and isinstance(self._auth, httpx.DigestAuth)
            and challenge.startswith("basic")
        ):
            response.close()
            self._auth = httpx.BasicAuth(self._user, self._password)
            response = self._client.send(request, auth=self._auth, stream=stream)
        if response.is_error:
            response.close()
            response.raise_for_status()
        return response

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()


def probe_http_kind(client: HttpCameraClient, open_timeout: float) -> Literal["mjpeg", "snapshot"]:
    """Whether ``client``'s URL serves an MJPEG stream or single JPEG snapshots."""
    try:
        response = client.get(stream=True, timeout=open_timeout)
    except SourceError:
        raise
    except Exception as exc:
        reason = describe(exc, where=client.plan.where, doing="opening", timeout=open_timeout)
        if untrusted_certificate(exc):
            raise UntrustedCertificate(reason) from None
        raise SourceError(reason) from None
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    response.close()
    if content_type == _MULTIPART:
        return "mjpeg"
    if content_type.startswith("image/"):
        return "snapshot"
    raise NotACameraUrl(
        f"{client.plan.where} serves {content_type or 'no content type'}, "
        "neither an MJPEG stream nor a JPEG snapshot"
    )


class NotACameraUrl(SourceError):
    """The URL answers, but with neither an MJPEG stream nor a JPEG (a web page, say)."""


class SnapshotSource(Source):
    """Polls a JPEG snapshot URL every ``snapshot_interval`` seconds."""

    kind = "snapshot"

    def __init__(self, *args: Any, security: SecuritySettings, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._security = security
        self._client: HttpCameraClient | None = None
        self._first: Sample | BadFrame | None = None

    def open(self) -> None:
        self._client = HttpCameraClient(self.plan, self.settings, self._security)
        self._first = self._fetch(self._client, "opening")

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def samples(self) -> Generator[Sample | BadFrame | None, None, None]:
        client = self._client
        if client is None:
            raise SourceError("source is not open")
        interval = self.settings.snapshot_interval
        due = time.monotonic()
        item, self._first = self._first, None
        while True:
            if item is not None:
                yield item
            due += interval
            delay = due - time.monotonic()
            if delay < 0:  # a slow camera: poll again right away, but do not try to catch up
                due, delay = time.monotonic(), 0.0
            if self.stop.wait(delay):
                return
            item = self._fetch(client, "reading")

    def _fetch(self, client: HttpCameraClient, doing: str) -> Sample | BadFrame:
        timeout = self.settings.open_timeout if doing == "opening" else self.read_timeout
        try:
            response = client.get(stream=True, timeout=timeout)
            try:
                content_type = response.headers.get("content-type", "").split(";")[0].lower()
                if content_type == _MULTIPART:
                    raise SourceError(
                        f"{self.plan.where} is an MJPEG stream, not a snapshot URL: "
                        "set kind to mjpeg or auto",
                        retry=False,
                    )
                data = bytearray()
                try:
                    for chunk in response.iter_bytes():
                        data += chunk
                        if len(data) > _MAX_IMAGE_BYTES:
                            raise SourceError(f"snapshot at {self.plan.where} is over 32 MB")
                except httpx.RemoteProtocolError:
                    # The camera closed the connection mid-image: one lost frame; if
                    # the camera is really gone the next poll says so.
                    return BadFrame("truncated JPEG image (the connection closed early)")
            finally:
                response.close()
        except SourceError:
            raise
        except Exception as exc:
            raise SourceError(
                describe(exc, where=self.plan.where, doing=doing, timeout=timeout)
            ) from None
        image = bytes(data)
        try:
            width, height = jpeg_size(image)
        except BadFrame as bad:
            if not content_type.startswith("image/"):
                raise SourceError(
                    f"{self.plan.where} serves {content_type or 'no content type'}, not a JPEG"
                ) from None
            return bad
        return JpegSample(image, width, height)
