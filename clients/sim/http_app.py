"""The HTTP camera server: MJPEG streams and JPEG snapshots from pre-encoded JPEG loops.

Run as a child process by :class:`clients.sim.http.HttpCamera` (or by hand)::

    python -m clients.sim.http_app --port 8081 --camera cam1=/cache/a.mjpg \\
        [--camera cam2=/cache/b.mjpg] [--host 127.0.0.1] [--boundary frame]

Routes, for each camera NAME (the first camera also answers without the prefix):

* ``GET /NAME/mjpeg``: ``multipart/x-mixed-replace`` stream, paced at the loop's fps.
* ``GET /NAME/snapshot.jpg``: the current frame.
* ``GET|POST /NAME/control``: read or set the camera's fault, JSON
  ``{"fault": "none|garbage|truncated|stall"}``.
* ``GET|POST /control``: the same for every camera, plus ``{"outage_seconds": N}``,
  which takes the whole server down (port closed, streams cut) for N seconds.
* ``GET /``: the cameras and their routes, as JSON.

The camera is "live": the frame shown is picked from the wall clock (Unix time modulo
the loop length), so all clients see the same frame at the same time, the RTSP server
shows the same part of the scene, and an outage does not rewind it.

Faults, for tests of the ingest:

* ``garbage``: the MJPEG stream carries random bytes with no valid boundary or part
  headers; a snapshot is random bytes served as ``image/jpeg``.
* ``truncated``: JPEGs cut short (correct multipart framing and Content-Length, but the
  image data ends early, with no end-of-image marker).
* ``stall``: the connection stays open but no frame is sent; snapshot requests hang
  until the fault is cleared.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Literal, get_args

import uvicorn
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from clients.sim.jpegloop import JpegLoop

__all__ = ["FAULTS", "Fault", "SimHttpState", "build_app", "main"]

Fault = Literal["none", "garbage", "truncated", "stall"]
FAULTS: tuple[Fault, ...] = get_args(Fault)
_STALL_POLL_S = 0.1


@dataclass
class SimCamera:
    """One camera's frames and current fault."""

    name: str
    loop: JpegLoop
    fault: Fault = "none"


@dataclass
class SimHttpState:
    """Everything the routes share; ``closing`` ends open streams before a shutdown."""

    cameras: dict[str, SimCamera]
    boundary: str
    closing: threading.Event = field(default_factory=threading.Event)
    outage_seconds: float | None = None
    server: uvicorn.Server | None = None
    rng: random.Random = field(default_factory=random.Random)

    def current(self, cam: SimCamera) -> bytes:
        """The JPEG that is 'live' now: the loop position is Unix time modulo its length."""
        index = int(time.time() * cam.loop.fps)
        return cam.loop.frame(index)

    def faulty(self, cam: SimCamera, jpeg: bytes) -> bytes:
        """``jpeg`` as the camera's fault makes it."""
        if cam.fault == "truncated":
            return jpeg[: max(2, int(len(jpeg) * self.rng.uniform(0.3, 0.7)))]
        if cam.fault == "garbage":
            return self.rng.randbytes(len(jpeg))
        return jpeg

    def part(self, cam: SimCamera) -> bytes:
        """The next piece of the multipart stream."""
        jpeg = self.current(cam)
        if cam.fault == "garbage":
            # Random bytes instead of a part: no boundary line, no headers.
            return self.rng.randbytes(len(jpeg))
        body = self.faulty(cam, jpeg)
        head = (
            f"--{self.boundary}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        return head + body + b"\r\n"


def build_app(state: SimHttpState) -> Starlette:
    """The ASGI app serving ``state``'s cameras."""
    routes = _Routes(state)
    return Starlette(
        routes=[
            Route("/", routes.index),
            Route("/mjpeg", routes.mjpeg),
            Route("/snapshot.jpg", routes.snapshot),
            Route("/control", routes.control, methods=["GET", "POST"]),
            Route("/{name}/mjpeg", routes.mjpeg),
            Route("/{name}/snapshot.jpg", routes.snapshot),
            Route("/{name}/control", routes.control, methods=["GET", "POST"]),
        ],
        exception_handlers={_NotFound: routes.not_found},
    )


class _NotFound(LookupError):
    pass


class _Routes:
    def __init__(self, state: SimHttpState) -> None:
        self.state = state
        self.first = next(iter(state.cameras))

    def camera(self, request: Request) -> SimCamera:
        name = request.path_params.get("name", self.first)
        if name not in self.state.cameras:
            raise _NotFound(name)
        return self.state.cameras[name]

    async def frames(self, cam: SimCamera) -> AsyncIterator[bytes]:
        period = 1.0 / cam.loop.fps
        due = time.monotonic()
        while not self.state.closing.is_set():
            if cam.fault == "stall":
                # Faults are plain state that outlives each server's event loop (an
                # outage starts a new one), so poll rather than wait on an asyncio.Event.
                await asyncio.sleep(_STALL_POLL_S)
                due = time.monotonic()
                continue
            yield self.state.part(cam)
            due += period
            delay = due - time.monotonic()
            if delay < -1.0:  # a slow client: skip ahead instead of bursting to catch up
                due = time.monotonic()
            await asyncio.sleep(max(0.0, delay))

    async def mjpeg(self, request: Request) -> Response:
        return StreamingResponse(
            self.frames(self.camera(request)),
            media_type=f"multipart/x-mixed-replace; boundary={self.state.boundary}",
            headers={"Cache-Control": "no-cache, no-store", "Pragma": "no-cache"},
        )

    async def snapshot(self, request: Request) -> Response:
        cam = self.camera(request)
        while cam.fault == "stall" and not self.state.closing.is_set():  # noqa: ASYNC110 (see frames)
            await asyncio.sleep(_STALL_POLL_S)
        body = self.state.faulty(cam, self.state.current(cam))
        return Response(body, media_type="image/jpeg", headers={"Cache-Control": "no-cache"})

    async def control(self, request: Request) -> Response:
        name = request.path_params.get("name")
        cams = [self.camera(request)] if name is not None else list(self.state.cameras.values())
        body: Any = None
        if request.method == "POST":
            try:
                body = await request.json()
            except ValueError:
                return JSONResponse({"error": "body must be JSON"}, status_code=400)
            error = _control_error(body, per_camera=name is not None)
            if error:
                return JSONResponse({"error": error}, status_code=400)
            if body.get("fault") is not None:
                for cam in cams:
                    cam.fault = body["fault"]
        reply: dict[str, Any] = {"cameras": {c.name: {"fault": c.fault} for c in cams}}
        task = None
        if body is not None and body.get("outage_seconds") is not None:
            reply["outage_seconds"] = body["outage_seconds"]
            # Go down only after this reply has been sent.
            task = BackgroundTask(_begin_outage, self.state, float(body["outage_seconds"]))
        return JSONResponse(reply, background=task)

    async def index(self, _request: Request) -> Response:
        cameras = {
            name: {
                "mjpeg": f"/{name}/mjpeg",
                "snapshot": f"/{name}/snapshot.jpg",
                "control": f"/{name}/control",
                "fps": cam.loop.fps,
                "width": cam.loop.width,
                "height": cam.loop.height,
                "fault": cam.fault,
            }
            for name, cam in self.state.cameras.items()
        }
        return JSONResponse({"cameras": cameras})

    async def not_found(self, _request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": f"no camera {exc}"}, status_code=404)


def _control_error(body: Any, *, per_camera: bool) -> str | None:
    """Why a control request body is invalid, or None."""
    if not isinstance(body, dict) or not body or set(body) - {"fault", "outage_seconds"}:
        return "expected an object with 'fault' and/or 'outage_seconds'"
    fault = body.get("fault")
    if fault is not None and fault not in FAULTS:
        return f"fault must be one of {', '.join(FAULTS)}"
    outage = body.get("outage_seconds")
    if outage is None:
        return None
    if per_camera:
        return "an outage takes the whole server down: POST /control"
    if isinstance(outage, bool) or not isinstance(outage, int | float) or not 0 < outage <= 3600:
        return "outage_seconds must be a number in (0, 3600]"
    return None


def _begin_outage(state: SimHttpState, seconds: float) -> None:
    state.outage_seconds = seconds
    state.closing.set()
    if state.server is not None:
        state.server.should_exit = True


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    # Rebinding the same port right after an outage must not wait for TIME_WAIT.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


class _Server(uvicorn.Server):
    """A uvicorn server that also ends open streams at once when asked to exit."""

    def __init__(self, config: uvicorn.Config, state: SimHttpState) -> None:
        super().__init__(config)
        self.state = state

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.state.closing.set()
        super().handle_exit(sig, frame)


def serve(state: SimHttpState, host: str, port: int) -> None:
    """Serve until a signal or stdin EOF; go down and come back for requested outages."""
    app = build_app(state)
    while True:
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
        server = _Server(config, state)
        state.server = server
        state.closing.clear()
        server.run(sockets=[_listen(host, port)])
        if state.outage_seconds is None:
            return
        time.sleep(state.outage_seconds)
        state.outage_seconds = None


def _exit_on_stdin_eof() -> None:
    while os.read(sys.stdin.fileno(), 4096):
        pass
    # The parent is gone (even if it was SIGKILLed): nothing to clean up worth waiting for.
    os._exit(0)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(description="Simulated HTTP MJPEG/snapshot camera.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--camera", action="append", required=True, metavar="NAME=FILE", help="repeatable"
    )
    parser.add_argument("--boundary", default="frame")
    parser.add_argument("--exit-on-stdin-eof", action="store_true")
    args = parser.parse_args(argv)
    cameras: dict[str, SimCamera] = {}
    for item in args.camera:
        name, sep, file = item.partition("=")
        if not sep or not name or not file:
            parser.error(f"--camera wants NAME=FILE, got {item!r}")
        cameras[name] = SimCamera(name, JpegLoop(Path(file)))
    state = SimHttpState(cameras=cameras, boundary=args.boundary)
    if args.exit_on_stdin_eof:
        threading.Thread(target=_exit_on_stdin_eof, daemon=True).start()
    serve(state, args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
