"""An https camera whose TLS fails says so, instead of "cannot connect"; and tls_verify and
tls_ca decide, for snapshots (httpx) and MJPEG (FFmpeg) alike, which certificate passes."""

from __future__ import annotations

import contextlib
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from ingest_harness import camera, running, serving, take_frames, wait_until
from pydantic import ValidationError

_JPEG = cv2.imencode(".jpg", np.full((120, 160, 3), 90, np.uint8))[1].tobytes()


class _Page(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", "0")
        self.end_headers()


class _Camera(BaseHTTPRequestHandler):
    """An IP camera: an MJPEG stream at /video, a JPEG snapshot anywhere else."""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        if self.path != "/video":
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(len(_JPEG)))
            self.end_headers()
            self.wfile.write(_JPEG)
            return
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        part = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
        try:
            for _ in range(300):
                self.wfile.write(part % len(_JPEG) + _JPEG + b"\r\n")
                time.sleep(0.05)
        except OSError:
            pass  # the reader hung up


@contextlib.contextmanager
def http_server(
    tls: ssl.SSLContext | None = None, handler: type[BaseHTTPRequestHandler] = _Page
) -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    with serving(server) as port:
        yield port


def self_signed(folder: Path) -> ssl.SSLContext:
    """A server context with a self-signed certificate, as many IP cameras have."""
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", "cam.key", "-out", "cam.crt", "-days", "1",
         "-subj", "/CN=ipcam", "-addext", "subjectAltName=IP:127.0.0.1"],
        cwd=folder, check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "cam.crt", folder / "cam.key")
    return context


async def test_self_signed_certificate_is_named(tmp_path: Path) -> None:
    with http_server(self_signed(tmp_path)) as port:
        async with running(camera(f"https://u:pw@127.0.0.1:{port}/snap.jpg")) as reader:
            await wait_until(reader, lambda s: s.last_error is not None, 5, "an error")
            error = reader.status.last_error
    assert error == (
        f"the TLS certificate of 127.0.0.1:{port} is not trusted (self-signed certificate); "
        "set tls_ca to the camera's CA, tls_verify: false, or use its http:// URL"
    )


async def test_https_url_on_a_plain_http_port_is_named() -> None:
    with http_server() as port:
        async with running(camera(f"https://u:pw@127.0.0.1:{port}/snap.jpg")) as reader:
            await wait_until(reader, lambda s: s.last_error is not None, 5, "an error")
            error = reader.status.last_error
    assert error == f"TLS handshake with 127.0.0.1:{port} failed: is it an https port?"


_PATHS = {"mjpeg": "/video", "snapshot": "/snap.jpg", "auto": "/video"}


@pytest.mark.parametrize("kind", ["mjpeg", "snapshot", "auto"])
async def test_self_signed_camera_is_refused_with_the_reason(tmp_path: Path, kind: str) -> None:
    """Verified by default, also through FFmpeg (kind: mjpeg), which does not verify unless
    told to and then says only "input/output error"."""
    with http_server(self_signed(tmp_path), _Camera) as port:
        url = f"https://u:pw@127.0.0.1:{port}{_PATHS[kind]}"
        async with running(camera(url, kind=kind)) as reader:
            await wait_until(reader, lambda s: s.last_error is not None, 5, "an error")
            status = reader.status
    assert status.last_error is not None
    assert status.last_error.startswith(
        f"the TLS certificate of 127.0.0.1:{port} is not trusted (self-signed certificate); "
    )
    assert status.frames == 0


@pytest.mark.parametrize("kind", ["mjpeg", "snapshot", "auto"])
async def test_self_signed_camera_with_tls_verify_off_gives_frames(
    tmp_path: Path, kind: str
) -> None:
    with http_server(self_signed(tmp_path), _Camera) as port:
        url = f"https://u:pw@127.0.0.1:{port}{_PATHS[kind]}"
        async with running(camera(url, kind=kind, tls_verify=False)) as reader:
            frames = await take_frames(reader, 2, within=5)
    assert (frames[0].width, frames[0].height) == (160, 120)


@pytest.mark.parametrize("kind", ["mjpeg", "snapshot"])
async def test_camera_certificate_is_trusted_through_tls_ca(tmp_path: Path, kind: str) -> None:
    with http_server(self_signed(tmp_path), _Camera) as port:
        url = f"https://127.0.0.1:{port}{_PATHS[kind]}"
        async with running(camera(url, kind=kind, tls_ca=tmp_path / "cam.crt")) as reader:
            await take_frames(reader, 2, within=5)


async def test_missing_ca_bundle_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "missing-ca.pem"
    async with running(camera("https://127.0.0.1:1/video", kind="mjpeg", tls_ca=missing)) as r:
        await wait_until(r, lambda s: s.last_error is not None, 5, "an error")
        error = r.status.last_error
    assert error == f"the CA bundle {missing} (tls_ca) is not a readable file"


def test_relative_ca_bundle_is_refused_in_the_config() -> None:
    with pytest.raises(ValidationError, match="the CA bundle needs an absolute path"):
        camera("https://127.0.0.1/video", tls_ca="certs/cam.pem")


@contextlib.contextmanager
def tls_listener(tls: ssl.SSLContext) -> Iterator[int]:
    """A TLS port that completes handshakes and then hangs up: enough to test the
    certificate check, which happens before any RTSP is spoken."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with contextlib.suppress(OSError), conn:
                conn.settimeout(2)
                tls.wrap_socket(conn, server_side=True).close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        listener.close()


async def test_self_signed_rtsps_camera_is_refused_with_the_reason(tmp_path: Path) -> None:
    with tls_listener(self_signed(tmp_path)) as port:
        url = f"rtsps://u:pw@127.0.0.1:{port}/stream1"
        async with running(camera(url)) as reader:
            await wait_until(reader, lambda s: s.last_error is not None, 5, "an error")
            error = reader.status.last_error
        assert error is not None
        assert error.startswith(f"the TLS certificate of 127.0.0.1:{port} is not trusted (")
        async with running(camera(url, tls_verify=False)) as reader:
            await wait_until(reader, lambda s: s.last_error is not None, 5, "an error")
            error = reader.status.last_error
        assert error is not None
        assert "certificate" not in error  # past TLS: the port does not speak RTSP
