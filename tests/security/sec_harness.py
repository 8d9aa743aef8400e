"""Helpers for the security tests.

The real server comes from the reliability harness (``tests/reliability/rel_harness.py``),
so both suites run the app exactly the same way; :class:`ThreadedServer` runs it on a loop
of its own for synchronous clients (schemathesis, Hypothesis).
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from process_harness import motionhub, poll, stop, write_config

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reliability"))

from rel_harness import (
    ADMIN,
    VIEWER,
    Running,
    make_settings,
    serve,
)

from clients.sim import free_port
from server.config import Settings

T = TypeVar("T")

__all__ = [
    "ADMIN",
    "VIEWER",
    "Running",
    "ThreadedServer",
    "free_port",
    "make_settings",
    "motionhub",
    "poll",
    "serve",
    "stop",
    "write_config",
]


class ThreadedServer:
    """The real app under uvicorn on an event loop in a thread of its own."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.running: Running | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="sec-server", daemon=True)

    @property
    def url(self) -> str:
        assert self.running is not None
        return self.running.url

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # handed to the test thread in __enter__/__exit__
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with serve(self.settings) as running:
            self.running = running
            self._ready.set()
            await self._stop.wait()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the server's loop and wait for its result."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(30)

    def __enter__(self) -> ThreadedServer:
        self._thread.start()
        self._ready.wait(60)
        if self._error is not None:
            raise self._error
        assert self.running is not None, "server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)
        if self._error is not None:
            raise self._error
