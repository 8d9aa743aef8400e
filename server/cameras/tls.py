"""How an https:// or rtsps:// camera's certificate is checked, by httpx and FFmpeg alike.

``tls_verify`` and ``tls_ca`` of the camera decide it: checked against the system's CAs
(the default), against the camera's own CA bundle, or not at all (a self-signed camera
on a trusted network). httpx takes an :class:`ssl.SSLContext`; FFmpeg takes its
``tls_verify`` and ``ca_file`` options. FFmpeg does not verify unless told to, and its
own idea of the system's CAs is the path its TLS library was built with, so the
system bundle is named to it explicitly. When FFmpeg refuses a certificate it says only
"input/output error", so :func:`certificate_problem` asks again with Python's ssl.
"""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

from server.cameras.errors import SourceError, UntrustedCertificate, untrusted_text
from server.cameras.policy import SourcePlan
from server.config import CameraSettings

__all__ = ["certificate_problem", "ffmpeg_tls_options", "httpx_verify", "system_ca_file"]

_DEBIAN_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def system_ca_file() -> str:
    """The system's CA bundle as one PEM file (what Python's ssl module trusts)."""
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile, _DEBIAN_BUNDLE):
        if candidate and Path(candidate).is_file():
            return candidate
    return _DEBIAN_BUNDLE


def _check_ca(settings: CameraSettings) -> None:
    if settings.tls_ca is not None and not settings.tls_ca.is_file():
        raise SourceError(f"the CA bundle {settings.tls_ca} (tls_ca) is not a readable file")


def httpx_verify(settings: CameraSettings) -> ssl.SSLContext | bool:
    """httpx's ``verify=`` for the camera. Raises :class:`SourceError` for a bad ``tls_ca``."""
    if not settings.tls_verify:
        return False
    _check_ca(settings)
    cafile = str(settings.tls_ca) if settings.tls_ca is not None else None
    try:
        return ssl.create_default_context(cafile=cafile)
    except ssl.SSLError as exc:
        raise SourceError(
            f"the CA bundle {settings.tls_ca} (tls_ca) holds no usable PEM certificate "
            f"({exc.reason or exc})"
        ) from None


def ffmpeg_tls_options(settings: CameraSettings) -> dict[str, str]:
    """FFmpeg's TLS options for the camera (used by its https protocol only)."""
    if not settings.tls_verify:
        return {"tls_verify": "0"}
    _check_ca(settings)
    ca = str(settings.tls_ca) if settings.tls_ca is not None else system_ca_file()
    return {"tls_verify": "1", "ca_file": ca}


def certificate_problem(plan: SourcePlan, settings: CameraSettings) -> UntrustedCertificate | None:
    """After a failed FFmpeg open: the error to show if the camera's certificate does not
    verify (one TLS handshake, as FFmpeg would check it), else None."""
    if not settings.tls_verify or plan.host is None or plan.port is None:
        return None
    context = httpx_verify(settings)
    assert isinstance(context, ssl.SSLContext)
    try:
        with (
            socket.create_connection((plan.host, plan.port), settings.open_timeout) as sock,
            context.wrap_socket(sock, server_hostname=plan.host),
        ):
            return None
    except ssl.SSLCertVerificationError as exc:
        return UntrustedCertificate(untrusted_text(plan.where, exc.verify_message))
    except OSError:
        return None  # not a certificate problem: FFmpeg's reason stands
