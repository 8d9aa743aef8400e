"""An async context manager held open on an event loop of its own, in a thread, for
synchronous clients (the sync WebSocket client, schemathesis, Hypothesis)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from typing import Any, Generic, Self, TypeVar

T = TypeVar("T")
R = TypeVar("R")

__all__ = ["LoopThread"]


class LoopThread(Generic[T]):
    """``with LoopThread(open_, name) as held:`` enters ``open_()`` on a new loop in a thread;
    ``held.value`` is what it yielded, ``held.run(coro)`` runs a coroutine on that loop."""

    def __init__(
        self, open_: Callable[[], AbstractAsyncContextManager[T]], name: str, timeout: float = 60
    ) -> None:
        self.value: T | None = None
        self._open = open_
        self._timeout = timeout
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)

    def _main(self) -> None:
        try:
            asyncio.run(self._hold())
        except BaseException as exc:  # handed to the test thread in __enter__/__exit__
            self._error = exc
            self._ready.set()

    async def _hold(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with self._open() as value:
            self.value = value
            self._ready.set()
            await self._stop.wait()

    def run(self, coro: Coroutine[Any, Any, R]) -> R:
        """Run ``coro`` on the held loop and wait for its result."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(30)

    def __enter__(self) -> Self:
        self._thread.start()
        self._ready.wait(self._timeout)
        if self._error is not None:
            raise self._error
        assert self.value is not None, f"{self._thread.name} did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(self._timeout)
        assert not self._thread.is_alive(), f"{self._thread.name} did not stop"
        if self._error is not None:
            raise self._error
