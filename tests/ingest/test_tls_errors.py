"""An https camera whose TLS fails says so, instead of "cannot connect"."""

from __future__ import annotations

import contextlib
import ssl
import subprocess
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ingest_harness import camera, running, serving, wait_until


class _Page(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", "0")
        self.end_headers()


@contextlib.contextmanager
def http_server(tls: ssl.SSLContext | None = None) -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
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
        "use the camera's http:// URL"
    )


async def test_https_url_on_a_plain_http_port_is_named() -> None:
    with http_server() as port:
        async with running(camera(f"https://u:pw@127.0.0.1:{port}/snap.jpg")) as reader:
            await wait_until(reader, lambda s: s.last_error is not None, 5, "an error")
            error = reader.status.last_error
    assert error == f"TLS handshake with 127.0.0.1:{port} failed: is it an https port?"
