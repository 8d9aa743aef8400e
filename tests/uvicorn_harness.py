"""A real uvicorn in the test's own event loop on a free loopback port: the one way the
tests serve an app in-process (the whole app, or the WebSocket endpoint over a fake core)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn


@asynccontextmanager
async def uvicorn_on_free_port(
    app: Any, **options: Any
) -> AsyncIterator[tuple[int, uvicorn.Server]]:
    """Run uvicorn for ``app`` with ``options`` (``uvicorn.Config`` keyword arguments) until
    the block ends; yields the port and the server (whose ``server_state.connections`` are
    the open connections)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        **{
            "log_config": None,
            "log_level": "warning",
            "lifespan": "on",
            "timeout_graceful_shutdown": 5,
            **options,
        },
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="uvicorn")
    try:
        await wait_started(server, task)
    except BaseException:
        server.should_exit = True
        await asyncio.gather(task, return_exceptions=True)
        sock.close()
        raise
    try:
        yield port, server
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)
        sock.close()


async def wait_started(server: uvicorn.Server, task: asyncio.Task[None]) -> None:
    """Wait until ``server`` (served by ``task``) accepts connections; fails if it stops."""
    deadline = time.monotonic() + 20
    while not server.started:
        if task.done():
            # uvicorn reports a failed start-up as SystemExit, which must not end pytest.
            failure = task.exception() if not task.cancelled() else None
            raise RuntimeError(f"the server stopped during start-up: {failure!r}") from failure
        if time.monotonic() > deadline:
            raise TimeoutError("the server did not start within 20 s")
        await asyncio.sleep(0.02)
