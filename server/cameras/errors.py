"""Why a camera source failed, in words a person can act on.

Every failure inside the ingest code becomes a :class:`SourceError` whose message
is short, human-readable and free of credentials. :func:`describe` turns the
exceptions PyAV, httpx and the socket layer raise into such messages, so the
status API, logs and MQTT all show the same text.
"""

from __future__ import annotations

import errno
import itertools
import socket
import ssl
from collections.abc import Iterator

import av.error
import httpx

from server.redact import redact_text

__all__ = [
    "BadFrame",
    "SourceError",
    "UntrustedCertificate",
    "describe",
    "untrusted_certificate",
    "untrusted_text",
]

_MAX_LEN = 200


class SourceError(Exception):
    """A camera source could not be opened or read; ``reason`` is safe to show anyone.

    ``retry`` is False for conditions no reconnect can fix (a file that ended with
    looping off, a URL the security policy forbids).
    """

    def __init__(self, reason: str, *, retry: bool = True) -> None:
        self.reason = _clean(reason)
        self.retry = retry
        super().__init__(self.reason)


class UntrustedCertificate(SourceError):
    """The camera's TLS certificate failed verification (self-signed, expired, wrong name)."""


def untrusted_text(where: str, why: str) -> str:
    """The reason shown for a certificate that failed verification."""
    return (
        f"the TLS certificate of {where} is not trusted ({why}); "
        "set tls_ca to the camera's CA, tls_verify: false, or use its http:// URL"
    )


def _chain(exc: BaseException, depth: int) -> Iterator[BaseException]:
    """``exc``, then what caused it (its ``__cause__``, else ``__context__``), ``depth``
    errors at most: httpx wraps httpcore's error, which wraps the socket's or TLS error."""
    inner: BaseException | None = exc
    for _ in range(depth):
        if inner is None:
            return
        yield inner
        inner = inner.__cause__ or inner.__context__


def untrusted_certificate(exc: BaseException) -> bool:
    """Whether ``exc`` is, or was caused by, a failed certificate verification."""
    return any(isinstance(e, ssl.SSLCertVerificationError) for e in _chain(exc, 6))


class BadFrame(Exception):
    """One frame could not be decoded; it is skipped and counted, the stream goes on."""

    def __init__(self, reason: str) -> None:
        self.reason = _clean(reason)
        super().__init__(self.reason)


def _clean(text: str) -> str:
    text = redact_text(" ".join(text.split()))
    return text if len(text) <= _MAX_LEN else text[: _MAX_LEN - 1] + "…"


_ERRNO_TEXT = {
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNRESET: "connection reset by the camera",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ENETUNREACH: "network unreachable",
    errno.ETIMEDOUT: "timed out",
    errno.EPIPE: "connection closed by the camera",
    errno.EACCES: "permission denied",
    errno.ENOENT: "no such file or device",
    errno.EBUSY: "device busy (another program is using it)",
    errno.ENODEV: "no such device",
}


def describe(
    exc: BaseException,
    *,
    where: str,
    doing: str,
    timeout: float | None = None,
    elapsed: float | None = None,
) -> str:
    """A one-line reason for ``exc``.

    ``where`` names the target without credentials (``host:port`` or a file name),
    ``doing`` is ``"opening"`` or ``"reading"``, ``timeout`` the limit that applied
    and ``elapsed`` how long the failed call took: FFmpeg reports some timeouts as
    other errors (an RTSP server that never answers gives "invalid data"), so a
    failure that took the whole timeout is reported as the timeout it was.
    """
    if isinstance(exc, SourceError):
        return exc.reason
    timeouts = (av.error.ExitError, av.error.TimeoutError, TimeoutError, httpx.TimeoutException)
    ran_out = timeout is not None and elapsed is not None and elapsed >= 0.95 * timeout
    if isinstance(exc, timeouts) or ran_out:
        # ExitError is PyAV's interrupt callback firing: our own open/read timeout.
        waited = f" after {timeout:g} s" if timeout else ""
        return f"timed out{waited} {doing} {where}"
    status = _http_status(exc)
    if status is not None:
        return _http_reason(status, where)
    if isinstance(exc, httpx.HTTPError):
        return _httpx_reason(exc, where, doing)
    return _os_reason(exc, where, doing)


def _http_status(exc: BaseException) -> int | None:
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code
    for cls, code in _AV_HTTP:
        if isinstance(exc, cls):
            return code
    if isinstance(exc, av.error.HTTPError):
        return 0
    return None


_AV_HTTP = (
    (av.error.HTTPUnauthorizedError, 401),
    (av.error.HTTPForbiddenError, 403),
    (av.error.HTTPNotFoundError, 404),
)


def _http_reason(status: int, where: str) -> str:
    if status == 401:
        return f"authentication failed (401) at {where}: check the user name and password"
    if status == 403:
        return f"access denied (403) at {where}"
    if status == 404:
        return f"not found (404) at {where}: check the URL path"
    return f"the camera answered HTTP {status or 'error'} at {where}"


def _socket_reason(exc: BaseException | None, where: str) -> str | None:
    """The reason for a socket or TLS error under an httpx error, if it is one we know."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return untrusted_text(where, exc.verify_message)
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake with {where} failed: is it an https port?"
    if isinstance(exc, OSError) and exc.errno in _ERRNO_TEXT:
        return f"{_ERRNO_TEXT[exc.errno]} ({where})"
    return None


def _httpx_reason(exc: httpx.HTTPError, where: str, doing: str) -> str:
    for inner in itertools.islice(_chain(exc, 6), 1, None):
        cause = _socket_reason(inner, where)
        if cause is not None:
            return cause
    if isinstance(exc, httpx.UnsupportedProtocol):
        return f"{where} redirected to a URL scheme that is not allowed"
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect to {where}"
    if isinstance(exc, httpx.RemoteProtocolError):
        return (
            f"connection lost ({where})" if doing == "reading" else f"bad HTTP reply from {where}"
        )
    return f"HTTP error {doing} {where} ({type(exc).__name__})"


def _os_reason(exc: BaseException, where: str, doing: str) -> str:
    if isinstance(exc, socket.gaierror):
        text = f"cannot resolve the host name of {where}"
    elif isinstance(exc, av.error.InvalidDataError):
        text = f"invalid data {doing} {where} (not a supported video stream?)"
    elif isinstance(exc, av.error.EOFError):
        text = f"stream ended ({where})"
    elif isinstance(exc, OSError) and exc.errno == errno.EIO:
        # FFmpeg's word for a dropped connection (and for a failed DNS lookup).
        text = f"connection lost ({where})" if doing == "reading" else f"cannot connect to {where}"
    elif isinstance(exc, OSError) and exc.errno in _ERRNO_TEXT:
        text = f"{_ERRNO_TEXT[exc.errno]} ({where})"
    elif isinstance(exc, av.error.FFmpegError | OSError):
        text = f"{exc.strerror or type(exc).__name__} while {doing} {where}"
    else:
        text = f"{type(exc).__name__} while {doing} {where}: {exc}"
    return text
