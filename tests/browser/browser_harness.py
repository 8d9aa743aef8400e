"""The real app on a free port with simulated cameras, and headless Debian Chromium.

The server runs in the test's event loop (so a test can also look at the app's state and
call its API); Chromium is Debian's, never a downloaded one.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from uvicorn_harness import uvicorn_on_free_port

from server.app import create_app, uvicorn_kwargs
from server.config import Settings

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
    """Run the app as ``motionhub serve`` does, on a free loopback port, until the block exits."""
    app = create_app(settings)
    async with uvicorn_on_free_port(app, **uvicorn_kwargs(settings)) as (port, _):
        url = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {ADMIN}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=10) as client:
            yield Server(url, app, client)
