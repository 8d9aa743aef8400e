"""Which camera sources may be opened, and how FFmpeg is fenced in while reading them.

A camera URL comes from configuration or the API, so it is treated as untrusted:

* only the schemes a camera can speak are accepted (``rtsp``, ``rtsps``, ``http``,
  ``https``, ``file`` and ``/dev/videoN``), and the ``kind`` must fit the scheme;
* video files are read only from under ``security.media_dir`` (after resolving
  symlinks), and only through container formats that cannot reference other files;
* when ``security.allowed_networks`` is set, every address the host resolves to
  must lie inside it;
* every FFmpeg open gets a ``protocol_whitelist`` for its kind, so a stream can
  never pull a local file through ``concat:``, ``subfile:``, HLS or a redirect.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from server.cameras.errors import SourceError
from server.config import CameraKind, SecuritySettings

__all__ = [
    "FILE_FORMATS",
    "PROTOCOL_WHITELIST",
    "PlannedKind",
    "SourceKind",
    "SourcePlan",
    "check_host",
    "plan_source",
]

SourceKind = Literal["rtsp", "mjpeg", "snapshot", "file", "v4l2"]
PlannedKind = SourceKind | Literal["http"]
"""``http`` means: an http(s) URL whose content type decides between mjpeg and snapshot."""

PROTOCOL_WHITELIST: dict[SourceKind, str] = {
    # RTSP opens its control connection over tcp/tls and media over rtp/udp or
    # interleaved on the same tcp connection.
    "rtsp": "rtsp,rtsps,rtp,srtp,udp,tcp,tls",
    "mjpeg": "http,https,tcp,tls",
    "snapshot": "http,https,tcp,tls",
    "file": "file",
    "v4l2": "file",
}
"""FFmpeg protocols each source kind may use; everything else (concat, subfile, data,
crypto, hls, pipe, file for network kinds...) is refused by FFmpeg itself."""

FILE_FORMATS = (
    "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,mpegts,flv,h264,hevc,mjpeg,asf,mpeg,m4v,ogg,mxf"
)
"""Demuxers allowed for video files: self-contained containers only. Playlist-like
formats (hls, concat, dash, image2 patterns, ffmetadata...) could name other files."""

_DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322, "http": 80, "https": 443}
_DEVICE = re.compile(r"^/dev/video\d{1,3}$")
_KIND_SCHEMES: dict[CameraKind, tuple[str, ...]] = {
    "rtsp": ("rtsp", "rtsps"),
    "mjpeg": ("http", "https"),
    "snapshot": ("http", "https"),
}


@dataclass(frozen=True, slots=True)
class SourcePlan:
    """What to open for one URL. ``target`` still carries credentials: never show it."""

    kind: PlannedKind
    target: str
    where: str
    """Where the source is, safe to show: ``host:port`` or a path relative to media_dir."""
    host: str | None = None
    port: int | None = None


def plan_source(url: str, kind: CameraKind, security: SecuritySettings) -> SourcePlan:
    """Check ``url`` against the scheme, kind and file rules and say how to open it.

    Raises :class:`SourceError` (``retry=False``) when the policy forbids it. Does no
    network I/O: the host check is :func:`check_host`, run in the reader thread.
    """
    if _DEVICE.fullmatch(url):
        if kind not in ("auto", "v4l2"):
            raise SourceError(f"{url} is a V4L2 device but kind is {kind!r}", retry=False)
        return SourcePlan(kind="v4l2", target=url, where=url)
    if url.startswith("/"):
        return _plan_file(url, kind, security)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise SourceError("the camera URL cannot be parsed", retry=False) from None
    scheme = parts.scheme.lower()
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise SourceError("file:// URLs must name a local path", retry=False)
        return _plan_file(unquote(parts.path), kind, security)
    if scheme not in _DEFAULT_PORTS:
        raise SourceError(
            f"unsupported scheme {scheme or '(none)'!r}: use rtsp, rtsps, http, https, "
            "file or /dev/videoN",
            retry=False,
        )
    host = parts.hostname
    if not host:
        raise SourceError(f"a {scheme}:// URL needs a host", retry=False)
    port = port or _DEFAULT_PORTS[scheme]
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if kind == "auto":
        planned: PlannedKind = "rtsp" if scheme in ("rtsp", "rtsps") else "http"
    elif kind in _KIND_SCHEMES and scheme in _KIND_SCHEMES[kind]:
        planned = kind
    else:
        raise SourceError(f"kind {kind!r} cannot be used with a {scheme}:// URL", retry=False)
    return SourcePlan(kind=planned, target=url, where=where, host=host, port=port)


def _plan_file(path_text: str, kind: CameraKind, security: SecuritySettings) -> SourcePlan:
    if kind not in ("auto", "file"):
        raise SourceError(f"kind {kind!r} cannot be used with a file path", retry=False)
    if security.media_dir is None:
        raise SourceError(
            "video files are disabled: set security.media_dir to the folder they live in",
            retry=False,
        )
    media = security.media_dir.expanduser().resolve()
    path = Path(path_text)
    if not path.is_absolute():
        raise SourceError("a video file path must be absolute", retry=False)
    # Resolve symlinks and '..' first, so neither can lead outside media_dir.
    real = path.resolve()
    if not real.is_relative_to(media):
        raise SourceError(
            f"{path.name} is outside security.media_dir; only files under it may be read",
            retry=False,
        )
    where = str(real.relative_to(media))
    if not real.is_file():
        # Retried: the file may yet appear (a share mounted after the server started).
        raise SourceError(f"no such video file: {where} (in security.media_dir)")
    return SourcePlan(kind="file", target=str(real), where=where)


def check_host(plan: SourcePlan, security: SecuritySettings) -> None:
    """Resolve the plan's host and apply ``security.allowed_networks``.

    Blocking (DNS); call it from the reader thread. Raises :class:`SourceError`.
    Resolving here also gives a clear message for a mistyped host name, which
    FFmpeg would only report as an I/O error.
    """
    if plan.host is None:
        return
    try:
        infos = socket.getaddrinfo(plan.host, plan.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise SourceError(f"cannot resolve the host name {plan.host!r}") from None
    if not security.allowed_networks:
        return
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if not any(address in net for net in security.allowed_networks):
            raise SourceError(
                f"{plan.host} resolves to {address}, outside security.allowed_networks"
            )
