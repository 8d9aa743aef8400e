"""A real uvicorn serving the real app on a free port, in the test's own event loop.

Running in-process (not a subprocess) lets a test both talk HTTP to the server and record
every message the pipeline publishes on the hub. Subprocess tests (SIGTERM, demo) live in
their own files.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import uvicorn
from fastapi import FastAPI

from clients.sim import free_port
from server.app import create_app
from server.config import Settings
from server.core import Core
from server.messages import ServerMessage

ADMIN = "admin-token-0123456789abcdef"
VIEWER = "viewer-token-0123456789abcdef"
M = TypeVar("M")


def settings_for(
    path: Any, cameras: list[dict[str, Any]], auth: bool = False, **server: Any
) -> Settings:
    """Settings with storage under ``path`` and optional admin/viewer tokens."""
    tokens = [{"token": ADMIN, "role": "admin"}, {"token": VIEWER, "role": "viewer"}]
    return Settings.model_validate(
        {
            "server": {"auth": {"tokens": tokens if auth else []}, **server},
            "storage": {"path": str(path)},
            "cameras": cameras,
        }
    )


@dataclass
class Running:
    """A live server and what the test needs to observe it."""

    app: FastAPI
    url: str
    client: httpx.AsyncClient
    messages: list[ServerMessage] = field(default_factory=list)

    @property
    def core(self) -> Core:
        core: Core = self.app.state.core
        return core

    async def wait_for(
        self, kind: type[M], pred: Callable[[M], bool] = lambda m: True, within: float = 20.0
    ) -> M:
        """The first recorded message of ``kind`` matching ``pred`` (waits for it)."""
        deadline = time.monotonic() + within
        seen = 0
        while time.monotonic() < deadline:
            for m in self.messages[seen:]:
                if isinstance(m, kind) and pred(m):
                    return m
            seen = len(self.messages)
            await asyncio.sleep(0.05)
        raise AssertionError(f"no {kind.__name__} within {within} s")

    async def wait_online(self, camera: str, within: float = 20.0) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            r = await self.client.get(f"/api/cameras/{camera}")
            if r.status_code == 200 and r.json()["status"] == "online":
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"camera {camera} not online within {within} s: {r.text}")


@asynccontextmanager
async def serve(settings: Settings, token: str | None = None) -> AsyncIterator[Running]:
    """Run the app for ``settings`` on a free port until the block ends."""
    port = free_port()
    app = create_app(settings)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 20
    while not server.started:
        if task.done():
            task.result()
            raise AssertionError("server exited during start-up")
        if time.monotonic() > deadline:
            raise AssertionError("server did not start")
        await asyncio.sleep(0.02)
    running = Running(app, f"http://127.0.0.1:{port}", httpx.AsyncClient())
    app.state.hub.subscribe("test-recorder", running.messages.append)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(base_url=running.url, headers=headers, timeout=10) as client:
        running.client = client
        try:
            yield running
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, 30)


def camera_threads(camera: str) -> list[threading.Thread]:
    """Live reader threads of ``camera`` (they are named after it)."""
    return [t for t in threading.enumerate() if t.is_alive() and camera in t.name]
