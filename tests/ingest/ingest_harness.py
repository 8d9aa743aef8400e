"""Helpers for the camera ingest tests: settings, running readers, waiting, counting."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from clients.sim import SceneSpec
from server.cameras import CameraReader, CameraStatus, Frame
from server.config import CameraSettings, SecuritySettings

SPEC = SceneSpec(width=640, height=360, fps=15, seed=7, loop_seconds=4)
"""Every simulated camera here: 640x360 at 15 fps, a 4 s loop (renders in well under 1 s)."""

# Short limits so failures show up within the 5 s the tests allow.
FAST = {"open_timeout": 2.0, "read_timeout": 2.0, "stall_timeout": 2.0}


def camera(url: str, **overrides: Any) -> CameraSettings:
    """Settings for a camera with a unique id and the short test timeouts."""
    fields: dict[str, Any] = {"id": f"cam-{uuid.uuid4().hex[:8]}", "url": url, **FAST}
    fields.update(overrides)
    return CameraSettings(**fields)


def security(media_dir: Path | None = None, networks: tuple[str, ...] = ()) -> SecuritySettings:
    """Security settings for a test."""
    return SecuritySettings(media_dir=media_dir, allowed_networks=list(networks))  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def running(
    settings: CameraSettings, sec: SecuritySettings | None = None, **kwargs: Any
) -> AsyncIterator[CameraReader]:
    """A started reader, stopped (and its threads joined) on exit."""
    reader = CameraReader(settings, sec or security(), **kwargs)
    reader.start()
    try:
        yield reader
    finally:
        await reader.stop()


async def wait_until(
    reader: CameraReader, check: Callable[[CameraStatus], bool], within: float, what: str
) -> float:
    """Poll the reader's status until ``check`` passes; returns the seconds it took."""
    start = time.monotonic()
    await poll(lambda: check(reader.status), within, f"{what} (status: {{}})", reader)
    return time.monotonic() - start


async def poll(
    check: Callable[[], bool], within: float, what: str, reader: CameraReader | None = None
) -> None:
    """Wait until ``check()`` is true, failing after ``within`` seconds."""
    step = 0.05
    for _ in range(int(within / step) + 1):
        if check():
            return
        await asyncio.sleep(step)
    if check():
        return
    shown = what.format(reader.status) if reader is not None else what
    raise AssertionError(f"not {shown} within {within} s")


async def take_frames(reader: CameraReader, count: int, within: float = 10.0) -> list[Frame]:
    """The next ``count`` frames the reader hands over."""
    frames: list[Frame] = []
    seq = 0
    async with asyncio.timeout(within):
        while len(frames) < count:
            frame = await reader.next_frame(seq)
            seq = frame.seq
            frames.append(frame)
    return frames


def reader_threads() -> list[str]:
    """Names of the camera reader threads alive now."""
    return [t.name for t in threading.enumerate() if t.name.startswith("camera-")]


@contextlib.contextmanager
def listener() -> Iterator[socket.socket]:
    """A listening loopback socket that never accepts: connections just queue up."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock


@contextlib.contextmanager
def silent_server() -> Iterator[int]:
    """A loopback port that accepts connections but never says a word."""
    with listener() as sock:
        yield int(sock.getsockname()[1])


def closed_port() -> int:
    """A loopback port nothing listens on (connecting is refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serving(server: ThreadingHTTPServer, name: str | None = None) -> Iterator[int]:
    """Runs ``server`` on a daemon thread and yields its port; shuts it down after."""
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class _Redirector(BaseHTTPRequestHandler):
    target = ""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.server.hits += 1  # type: ignore[attr-defined]
        self.send_response(302)
        self.send_header("Location", self.target)
        self.send_header("Content-Length", "0")
        self.end_headers()


@contextlib.contextmanager
def redirecting_server(target: str) -> Iterator[ThreadingHTTPServer]:
    """A loopback HTTP server answering every GET with a redirect to ``target``.

    The test's own tiny server (stdlib), standing in for a hostile or compromised
    camera; ``server.hits`` counts the requests it got.
    """
    handler = type("Redirector", (_Redirector,), {"target": target})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.hits = 0  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, name="test-redirector", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class _BasicSnapshot(BaseHTTPRequestHandler):
    expected = ""
    jpeg = b""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.headers.get("Authorization") != self.expected:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="camera"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(self.jpeg)))
        self.end_headers()
        self.wfile.write(self.jpeg)


@contextlib.contextmanager
def basic_auth_snapshot_server(user: str, password: str, jpeg: bytes) -> Iterator[int]:
    """A loopback snapshot camera that only answers with HTTP Basic credentials (the
    simulator has no auth for HTTP); yields its port."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    handler = type("BasicSnapshot", (_BasicSnapshot,), {"expected": f"Basic {token}", "jpeg": jpeg})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    with serving(server, name="test-snapshot") as port:
        yield port


class FreezableProxy:
    """A loopback TCP proxy in front of a camera that can stop passing bytes while
    keeping every connection open: a camera that hangs without hanging up."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> FreezableProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        pipes = [
            asyncio.create_task(self._pipe(reader, up_writer)),
            asyncio.create_task(self._pipe(up_reader, writer)),
        ]
        self._tasks.update(pipes)
        try:
            await asyncio.gather(*pipes, return_exceptions=True)
        finally:
            self._tasks.difference_update(pipes)
            for w in (writer, up_writer):
                w.close()

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                await self.flowing.wait()
                dst.write(data)
                await dst.drain()
        finally:
            dst.close()
