"""The real app on a free port with simulated cameras, and headless Debian Chromium.

The server runs in the test's event loop (so a test can also look at the app's state and
call its API); Chromium is Debian's, never a downloaded one.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from server.app import create_app
from server.config import Settings
from server.ws import uvicorn_options

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ADMIN = "admin-token-0123456789abcdef"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

LAPTOP: dict[str, Any] = {"viewport": {"width": 1366, "height": 800}}
PHONE: dict[str, Any] = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
}


def require_chromium() -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")


@dataclass
class Server:
    """A running app: its base URL, the app object and an admin API client."""

    url: str
    app: FastAPI
    client: httpx.AsyncClient
    errors: list[str] = field(default_factory=list)

    async def camera(self, camera_id: str) -> dict[str, Any]:
        r = await self.client.get(f"/api/cameras/{camera_id}")
        r.raise_for_status()
        data: dict[str, Any] = r.json()
        return data


def demo_settings(storage: Path, sim: Any) -> Settings:
    """Two simulated cameras: ``busy`` always has traffic, ``cycle`` starts and ends events."""
    return Settings(
        server={"auth": {"tokens": [{"token": ADMIN, "role": "admin"}]}},
        storage={"path": str(storage)},
        cameras=[
            {"id": "busy", "name": "Street", "url": sim.mjpeg_url_for("busy")},
            {
                "id": "cycle",
                "name": "Garden",
                "url": sim.mjpeg_url_for("cycle"),
                "events": {"off_delay": 1.0, "min_frames": 2},
            },
        ],
    )


@contextlib.asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[Server]:
    """Run the app with uvicorn on a free loopback port until the block exits."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = create_app(settings)
    ws = uvicorn_options(settings.server.websocket)
    server = uvicorn.Server(
        uvicorn.Config(app, log_config=None, log_level="warning", lifespan="on", **ws)
    )
    task = asyncio.create_task(server.serve(sockets=[sock]), name="uvicorn")
    try:
        await _wait_started(server, task)
    except BaseException:
        server.should_exit = True
        await asyncio.gather(task, return_exceptions=True)
        sock.close()
        raise
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {ADMIN}"}
    try:
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=10) as client:
            yield Server(url, app, client)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)
        sock.close()


async def _wait_started(server: uvicorn.Server, task: asyncio.Task[None]) -> None:
    deadline = time.monotonic() + 20
    while not server.started:
        if task.done():
            # uvicorn reports a failed start-up as SystemExit, which must not end pytest.
            failure = task.exception() if not task.cancelled() else None
            raise RuntimeError(f"the server stopped during start-up: {failure!r}") from failure
        if time.monotonic() > deadline:
            raise TimeoutError("the server did not start within 20 s")
        await asyncio.sleep(0.02)
