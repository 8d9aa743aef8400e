"""A real uvicorn serving ``/ws`` on a free port, backed by a small in-memory core.

The server core is replaced by :class:`FakeServices`, which implements the
:class:`server.services.Services` protocol with a real :class:`server.bus.Hub`: the
fan-out, the endpoint, uvicorn and the sockets are the production ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn_harness import uvicorn_on_free_port as serve_on_free_port
from websockets.exceptions import ConnectionClosed

from server.bus import Hub
from server.config import Settings, WebSocketSettings
from server.messages import CameraInfo, Event
from server.services import CameraNotFound
from server.ws import FanOutLimits, WebSocketApi, WsOptions
from server.ws import uvicorn_options as ws_uvicorn_options

ADMIN_TOKEN = "admin-token-0123456789"
VIEWER_TOKEN = "viewer-token-0123456789"


class FakeServices:
    """An in-memory core: fixed cameras, token table, stored events in a list."""

    def __init__(self, cameras: list[str], auth: bool = True) -> None:
        self.hub = Hub()
        self.settings = Settings()
        self._cameras = {c: CameraInfo(id=c, name=c.upper(), status="online") for c in cameras}
        self._tokens = {ADMIN_TOKEN: "admin", VIEWER_TOKEN: "viewer"} if auth else None
        self.events: list[Event] = []
        self.fail_reads = False
        self.running = True

    def cameras(self) -> list[CameraInfo]:
        return list(self._cameras.values())

    def authenticate(self, token: str | None) -> str | None:
        if self._tokens is None:
            return "admin"
        return self._tokens.get(token or "")

    async def events_after(
        self, event_id: str, cameras: set[str] | None = None, limit: int = 1000
    ) -> list[Event]:
        if self.fail_reads:
            raise OSError("storage unavailable")
        await asyncio.sleep(0)
        found = [
            e
            for e in sorted(self.events, key=lambda e: e.id)
            if e.id > event_id and (cameras is None or e.camera in cameras)
        ]
        return found[:limit]

    async def set_detect_enabled(self, camera: str, enabled: bool) -> None:
        if camera not in self._cameras:
            raise CameraNotFound(camera)
        self._cameras[camera] = self._cameras[camera].model_copy(update={"detect_enabled": enabled})

    async def set_threshold(self, camera: str, threshold: int) -> None:
        if camera not in self._cameras:
            raise CameraNotFound(camera)

    async def event_snapshot(self, event_id: str) -> bytes | None:
        return None


_T0 = datetime(2026, 1, 1, tzinfo=UTC)


def make_event(n: int, camera: str, *, ended: bool = True, boxes: int = 1) -> Event:
    """Event number ``n``: ids sort like ULIDs do, by start time."""
    start = _T0 + timedelta(seconds=n)
    return Event(
        id=f"01J{n:023d}",
        camera=camera,
        zones=["door"],
        start=start,
        end=start + timedelta(seconds=3) if ended else None,
        peak_score=0.5,
        boxes=[(0.1, 0.1, 0.2, 0.2)] * boxes,
        has_snapshot=True,
    )


@dataclass
class LiveServer:
    """A running server: its ``ws://`` URL, the fake core and the WebSocket API object."""

    url: str
    http_url: str
    services: FakeServices
    api: WebSocketApi
    uvicorn: uvicorn.Server


def build_app(api: WebSocketApi) -> FastAPI:
    """The smallest app that serves ``/ws`` the way the real one does."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(api.run(), name="ws-fanout")
            yield
            task.cancel()

    app = FastAPI(lifespan=lifespan)
    api.install(app)
    return app


@contextlib.asynccontextmanager
async def uvicorn_on_free_port(
    app: Any, **uvicorn_options: Any
) -> AsyncIterator[tuple[int, uvicorn.Server]]:
    """:func:`uvicorn_harness.uvicorn_on_free_port` with the default WebSocket settings of
    ``motionhub serve`` unless ``uvicorn_options`` say otherwise."""
    options = {**ws_uvicorn_options(WebSocketSettings()), **uvicorn_options}
    async with serve_on_free_port(app, **options) as served:
        yield served


@contextlib.asynccontextmanager
async def live_server(
    cameras: list[str] | None = None,
    *,
    auth: bool = True,
    options: WsOptions | None = None,
    limits: FanOutLimits | None = None,
    **uvicorn_options: Any,
) -> AsyncIterator[LiveServer]:
    """Serve ``/ws`` over the fake core with uvicorn on a free port until the block exits."""
    services = FakeServices(cameras or ["cam1", "cam2"], auth=auth)
    api = WebSocketApi(
        services, options, limits or FanOutLimits(motion_interval=0, motion_budget=1e9)
    )
    async with uvicorn_on_free_port(build_app(api), **uvicorn_options) as (port, server):
        url = f"ws://127.0.0.1:{port}/ws"
        yield LiveServer(url, f"http://127.0.0.1:{port}", services, api, server)


async def recv_json(ws: Any, wait: float = 5.0) -> dict[str, Any]:
    """The next message from a ``websockets`` client connection, decoded."""
    raw = await asyncio.wait_for(ws.recv(), wait)
    assert isinstance(raw, str), "the server only sends text frames"
    data = json.loads(raw)
    assert isinstance(data, dict)
    return data


async def recv_until(ws: Any, type_: str, wait: float = 5.0) -> list[dict[str, Any]]:
    """Messages up to and including the first of ``type_``."""
    seen = []
    deadline = time.monotonic() + wait
    while True:
        msg = await recv_json(ws, max(0.01, deadline - time.monotonic()))
        seen.append(msg)
        if msg["type"] == type_:
            return seen


async def closed_by_server(ws: Any, wait: float = 5.0) -> ConnectionClosed:
    """Read (and discard) until the server closes the connection; how it closed."""
    async with asyncio.timeout(wait):
        try:
            while True:
                await ws.recv()
        except ConnectionClosed as exc:
            return exc


def close_code(closed: ConnectionClosed) -> int | None:
    """The close code the server sent, if a close frame arrived."""
    return closed.rcvd.code if closed.rcvd is not None else None
