"""``kind: mjpeg`` on a URL that is not an MJPEG stream says what the URL serves."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ingest_harness import camera, running, serving, wait_until

from clients.sim import HttpCamera


class _WebPage(BaseHTTPRequestHandler):
    """A camera's web interface: an HTML page where the stream was expected."""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        body = b"<html><body>Camera login</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextlib.contextmanager
def web_page() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _WebPage)
    with serving(server) as port:
        yield port


async def test_mjpeg_kind_on_a_web_page_names_its_content_type() -> None:
    with web_page() as port:
        settings = camera(f"http://user:pw@127.0.0.1:{port}/index.html", kind="mjpeg")
        async with running(settings) as reader:
            await wait_until(reader, lambda s: s.last_error is not None, 5, "an error")
            error = reader.status.last_error
    assert error == (
        f"127.0.0.1:{port} serves text/html, neither an MJPEG stream nor a JPEG snapshot"
    )


async def test_mjpeg_kind_on_a_snapshot_url_says_to_use_snapshot(
    http_camera: HttpCamera,
) -> None:
    async with running(camera(http_camera.snapshot_url, kind="mjpeg")) as reader:
        await wait_until(reader, lambda s: s.last_error is not None, 5, "an error")
        error = reader.status.last_error
    assert error is not None
    assert error.endswith(
        "serves single JPEG images, not an MJPEG stream: use kind: snapshot or auto"
    )
