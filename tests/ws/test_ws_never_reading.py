"""500 clients that never read cost the others nothing, and the server only their bounded
queues: measured on a server process of its own (so its memory is its own)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.bench.wsclient import WsClient, close_all, connect_many

pytestmark = pytest.mark.slow

LOAD = Path(__file__).with_name("ws_load.py")
STUCK = 500
READERS = 20
RATE = 5.0  # event messages per second, each also followed by a motion message
SLOW_TIMEOUT = 10.0


@pytest.fixture
async def load_server() -> AsyncIterator[tuple[int, httpx.AsyncClient]]:
    # Port 0: the server binds a free port itself and prints it, so no other program can
    # take it between choosing it and listening on it.
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(LOAD), "serve", "--port", "0", "--rate", str(RATE),
        "--cameras", "4", "--boxes", "600", "--slow-timeout", str(SLOW_TIMEOUT),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        ready, _, bound = line.strip().partition(b" ")
        assert ready == b"ready", f"load server did not start: {line!r}"
        assert bound.isdigit(), line
        port = int(bound)
        assert port != 0, line
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            yield port, http
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 20)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise


async def record(readers: list[WsClient], seconds: float) -> list[float]:
    """Event delivery delays (s) seen by ``readers`` over ``seconds``."""
    for c in readers:
        c.log.event_delays.clear()
        c.recording = True
    await asyncio.sleep(seconds)
    for c in readers:
        c.recording = False
    return sorted(d for c in readers for d in c.log.event_delays)


async def connect_stuck(port: int, count: int) -> list[WsClient]:
    """Clients that stop reading right after the handshake. A small receive buffer makes
    their sockets fill after a few messages instead of megabytes, as a slow phone's would."""
    loop = asyncio.get_running_loop()

    async def one() -> WsClient:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await loop.sock_connect(sock, ("127.0.0.1", port))
        _, client = await loop.create_connection(
            lambda: WsClient("127.0.0.1", port, record_motion=False), sock=sock
        )
        await asyncio.wait_for(client.ready, 20)
        client.stall()
        return client

    clients: list[WsClient] = []
    for first in range(0, count, 100):
        clients += await asyncio.gather(*(one() for _ in range(min(100, count - first))))
    return clients


def p99(delays: list[float]) -> float:
    return delays[min(len(delays) - 1, int(0.99 * len(delays)))]


async def test_clients_that_never_read(load_server: tuple[int, httpx.AsyncClient]) -> None:
    port, http = load_server

    async def stats() -> dict[str, Any]:
        r = await http.get("/_stats")
        r.raise_for_status()
        data: dict[str, Any] = r.json()
        return data

    readers = await connect_many("127.0.0.1", port, READERS, record_motion=False)
    await asyncio.sleep(1.0)
    before = await record(readers, 3.0)
    base = await stats()

    stuck = await connect_stuck(port, STUCK)
    # Until their sockets are full, the server still delivers to them. From then on they
    # are stuck for good, and only waiting for the slow-client timeout to end them.
    for _ in range(40):
        if (await stats())["behind"] >= STUCK:
            break
        await asyncio.sleep(0.25)
    during = await record(readers, 4.0)
    loaded = await stats()
    assert loaded["clients"] == READERS + STUCK

    # They are closed once they have been behind for the timeout, and their memory with them.
    for _ in range(60):  # the server is polled: it is another process
        after_close = await stats()
        if after_close["clients"] <= READERS:
            break
        await asyncio.sleep(0.5)
    after = await record(readers, 3.0)

    grown = loaded["rss"] - base["rss"]
    print(
        f"\nreaders p99: {p99(before) * 1000:.1f} ms before, {p99(during) * 1000:.1f} ms with"
        f" {STUCK} stuck, {p99(after) * 1000:.1f} ms after they were closed;"
        f" server RSS {base['rss'] >> 20} MB -> {loaded['rss'] >> 20} MB"
        f" (+{grown / STUCK / 1024:.0f} kB per stuck client) -> {after_close['rss'] >> 20} MB;"
        f" load {os.getloadavg()[0]:.1f}"
    )
    assert after_close["closed_slow"] == STUCK
    assert after_close["clients"] == READERS
    # Every reader got every event in each window, and no slower than before (with slack
    # for a shared two-core machine running other tests).
    for window, seconds in ((during, 4.0), (after, 3.0)):
        assert len(window) >= READERS * RATE * seconds * 0.9
        assert p99(window) <= max(3 * p99(before), p99(before) + 0.1)
    # Memory: a stuck client holds its queue of references to shared messages, its socket
    # write buffer (64 kB before uvicorn stops writing) and its connection objects.
    assert grown / STUCK < 400 * 1024
    await close_all(readers + stuck)
