"""Helpers for the security tests.

The real server comes from the reliability harness (``tests/rel_harness.py``),
so both suites run the app exactly the same way; :class:`ThreadedServer` runs it on a loop
of its own for synchronous clients (schemathesis, Hypothesis).
"""

from __future__ import annotations

from loop_thread import LoopThread
from process_harness import drain_stderr, listening_url, motionhub, poll, stop, write_config
from rel_harness import (
    ADMIN,
    VIEWER,
    Running,
    make_settings,
    serve,
)

from clients.sim import free_port
from server.config import Settings

__all__ = [
    "ADMIN",
    "VIEWER",
    "Running",
    "ThreadedServer",
    "drain_stderr",
    "free_port",
    "listening_url",
    "make_settings",
    "motionhub",
    "poll",
    "serve",
    "stop",
    "write_config",
]


class ThreadedServer(LoopThread[Running]):
    """The real app under uvicorn on an event loop in a thread of its own."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(lambda: serve(settings), name="sec-server")

    @property
    def running(self) -> Running | None:
        return self.value

    @property
    def url(self) -> str:
        assert self.value is not None
        return self.value.url
