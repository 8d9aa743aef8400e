"""Helpers for the fault-injection (and security) tests: a real server, process gauges and
polling.

``serve`` runs the real app (``create_app``) under a real uvicorn on a free loopback port in
the test's own event loop, and records every message the pipelines publish on the hub, so
a test can both break things for real and see exactly what the server did about it.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
from fastapi import FastAPI
from uvicorn_harness import uvicorn_on_free_port

from server.app import create_app, uvicorn_kwargs
from server.bench.probe import proc_rss
from server.config import Settings
from server.core import Core
from server.messages import ServerMessage

ADMIN = "rel-admin-token-0123456789abcdef"
VIEWER = "rel-viewer-token-0123456789abcdef"
M = TypeVar("M")


def make_settings(data: Path, cameras: list[dict[str, Any]], **sections: Any) -> Settings:
    """Settings with storage under ``data``, admin and viewer tokens, and extra sections."""
    server = {
        "auth": {
            "tokens": [{"token": ADMIN, "role": "admin"}, {"token": VIEWER, "role": "viewer"}]
        },
        **sections.pop("server", {}),
    }
    return Settings.model_validate(
        {"server": server, "storage": {"path": str(data)}, "cameras": cameras, **sections}
    )


@dataclass
class Running:
    """A live server: its app, base URL, an admin client and every hub message so far."""

    app: FastAPI
    url: str
    port: int
    client: httpx.AsyncClient
    messages: list[ServerMessage] = field(default_factory=list)

    @property
    def core(self) -> Core:
        core: Core = self.app.state.core
        return core

    async def camera(self, camera: str) -> dict[str, Any]:
        r = await self.client.get(f"/api/cameras/{camera}")
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()
        return data

    async def wait_camera(
        self, camera: str, check: Callable[[dict[str, Any]], bool], within: float, what: str
    ) -> dict[str, Any]:
        """Poll ``GET /api/cameras/{camera}`` until ``check`` passes; returns the last body."""
        deadline = time.monotonic() + within
        while True:
            body = await self.camera(camera)
            if check(body):
                return body
            if time.monotonic() > deadline:
                raise AssertionError(f"camera {camera} not {what} within {within} s: {body}")
            await asyncio.sleep(0.05)

    async def wait_online(self, camera: str, within: float = 20.0) -> None:
        """Poll until the camera reports ``online`` (it may not exist yet at first)."""
        deadline = time.monotonic() + within
        while True:
            r = await self.client.get(f"/api/cameras/{camera}")
            if r.status_code == 200 and r.json()["status"] == "online":
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"camera {camera} not online within {within} s: {r.text}")
            await asyncio.sleep(0.1)

    async def wait_analysed(self, camera: str, more_than: int, within: float = 10.0) -> None:
        """Wait until the camera's pipeline has analysed more than ``more_than`` frames."""
        deadline = time.monotonic() + within
        while True:
            pipeline = self.core.pipeline(camera)
            if pipeline is not None and pipeline.processed > more_than:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"camera {camera}: no frame analysed within {within} s")
            await asyncio.sleep(0.05)

    async def analysed(self, camera: str) -> int:
        """Frames the camera's pipeline has analysed so far."""
        pipeline = self.core.pipeline(camera)
        assert pipeline is not None, f"camera {camera} has no pipeline"
        return pipeline.processed

    async def metrics(self) -> str:
        r = await self.client.get("/metrics")
        assert r.status_code == 200
        return r.text

    async def wait_for(
        self,
        kind: type[M],
        pred: Callable[[M], bool] = lambda m: True,
        within: float = 20.0,
        after: int = 0,
    ) -> M:
        """The first hub message of ``kind`` matching ``pred`` recorded at or after index
        ``after`` (waits for it)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            for m in self.messages[after:]:
                if isinstance(m, kind) and pred(m):
                    return m
            await asyncio.sleep(0.05)
        raise AssertionError(f"no matching {kind.__name__} within {within} s")


@asynccontextmanager
async def serve(settings: Settings, token: str | None = ADMIN) -> AsyncIterator[Running]:
    """Run the real app for ``settings`` on a free port, configured as ``motionhub serve``
    configures uvicorn, until the block ends; the client sends ``token`` (none when ``None``)."""
    app = create_app(settings)
    options = {**uvicorn_kwargs(settings), "timeout_graceful_shutdown": 3}
    async with uvicorn_on_free_port(app, **options) as (port, _):
        url = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=10) as client:
            running = Running(app, url, port, client)
            app.state.hub.subscribe("test-recorder", running.messages.append)
            yield running


# ---- process gauges ------------------------------------------------------------------------


@dataclass(frozen=True)
class Gauges:
    """Threads, open file descriptors and resident memory of a process at one moment."""

    threads: int
    fds: int
    rss_mb: float

    def __str__(self) -> str:
        return f"{self.threads} threads, {self.fds} fds, {self.rss_mb:.1f} MB RSS"


def rss_mb(pid: int | str = "self") -> float:
    """Resident set size of ``pid`` in MiB, from ``/proc``."""
    rss = proc_rss(pid)
    assert rss > 0, f"no VmRSS for {pid}"
    return rss / (1024 * 1024)


def open_fds(pid: int | str = "self") -> int:
    """File descriptors ``pid`` has open."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def gauges(pid: int | str = "self") -> Gauges:
    """Gauges of ``pid`` (this process by default)."""
    threads = len(os.listdir(f"/proc/{pid}/task"))
    return Gauges(threads, open_fds(pid), rss_mb(pid))


def named_threads(part: str) -> list[str]:
    """Names of live threads of this process containing ``part``."""
    return [t.name for t in threading.enumerate() if t.is_alive() and part in t.name]


async def eventually(check: Callable[[], Awaitable[bool]], within: float, what: str) -> float:
    """Await ``check()`` until true; returns the seconds it took."""
    start = time.monotonic()
    while not await check():
        if time.monotonic() - start > within:
            raise AssertionError(f"{what}: not within {within} s")
        await asyncio.sleep(0.05)
    return time.monotonic() - start


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text, 0 when absent."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    key = f"{name}{{{want}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(key + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
