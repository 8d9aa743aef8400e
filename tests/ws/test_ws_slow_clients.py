"""Slow-client isolation: a client that stops reading delays nobody and is closed with 1013."""

from __future__ import annotations

import asyncio
import json
import socket
import statistics
import time
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from ws_harness import (
    VIEWER_TOKEN,
    LiveServer,
    close_code,
    closed_by_server,
    live_server,
    make_event,
    recv_json,
)

from server.messages import EventEndMessage, EventStartMessage, MotionMessage
from server.ws import FanOutLimits, WsOptions, websocket_protocol

SUBPROTOCOLS: Any = ["motionhub", f"bearer.{VIEWER_TOKEN}"]


async def stuck_client(server: LiveServer) -> ClientConnection:
    """A client that will stop reading: a tiny socket receive buffer and a one-message
    client queue, so the server's buffers fill after a few messages instead of megabytes."""
    port = int(server.url.split(":")[2].split("/")[0])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    ws = await connect(
        server.url, sock=sock, subprotocols=SUBPROTOCOLS, max_queue=1, compression=None
    )
    assert (await recv_json(ws))["type"] == "hello"
    return ws


async def collect(ws: ClientConnection, latencies: list[float], count: list[int]) -> None:
    """Read until the final event, recording publish-to-receive latency of event_start."""
    async for raw in ws:
        msg = json.loads(raw)
        if msg["type"] == "event_start":
            latencies.append(time.time() - msg["ts"])
            count[0] += 1
        elif msg["type"] == "event_end":
            return


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


@pytest.mark.slow
async def test_a_client_that_stops_reading_delays_nobody_and_is_closed_1013() -> None:
    limits = FanOutLimits(queue_size=100_000, slow_client_timeout=1.0, motion_interval=0)
    async with live_server(["cam1"], limits=limits, options=WsOptions(close_timeout=15)) as server:
        stuck = await stuck_client(server)
        fast = [await connect(server.url, subprotocols=SUBPROTOCOLS) for _ in range(3)]
        for ws in fast:
            assert (await recv_json(ws))["type"] == "hello"
        latencies: list[list[float]] = [[] for _ in fast]
        counts = [[0] for _ in fast]
        readers = [
            asyncio.create_task(collect(ws, lat, n))
            for ws, lat, n in zip(fast, latencies, counts, strict=True)
        ]
        hub = server.services.hub
        fanout = server.api.fanout
        publish_times: list[float] = []
        published = 0
        closed_at: int | None = None
        # ~10 kB event messages, 100 a second, until the stuck client has been closed and
        # then for another second to show the others are unaffected after it too.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            hub.publish(
                EventStartMessage(event=make_event(published, "cam1", boxes=500), ts=time.time())
            )
            hub.publish(MotionMessage(camera="cam1", ts=time.time(), motion=True, score=0.3))
            publish_times.append(time.perf_counter() - t0)
            published += 1
            if closed_at is None and fanout.closed_slow:
                closed_at = published
            if closed_at is not None and published >= closed_at + 100:
                break
            await asyncio.sleep(0.01)
        assert closed_at is not None, "the stuck client was never closed"
        assert fanout.client_count == 3

        hub.publish(EventEndMessage(event=make_event(published, "cam1")))
        await asyncio.wait_for(asyncio.gather(*readers), 10)
        for ws in fast:
            await ws.close()

        # Every event reached every reading client, promptly.
        assert [n[0] for n in counts] == [published] * 3
        worst = max(p99(lat) for lat in latencies)
        assert worst < 0.25, f"p99 delivery {worst * 1000:.0f} ms while a client was stuck"
        # Publishing (what the pipeline does) never waited for any socket.
        assert max(publish_times) < 0.05
        assert statistics.median(publish_times) < 0.002

        # The stuck client starts reading again: after what was buffered, a 1013 close.
        closed = await closed_by_server(stuck, 15)
        assert closed.rcvd is not None
        assert closed.rcvd.code == 1013
        assert "too slow" in closed.rcvd.reason


@pytest.mark.slow
async def test_event_overflow_closes_at_once_and_frees_the_queue() -> None:
    limits = FanOutLimits(queue_size=50, slow_client_timeout=60, motion_interval=0)
    async with live_server(["cam1"], limits=limits, options=WsOptions(close_timeout=15)) as server:
        stuck = await stuck_client(server)
        fanout = server.api.fanout
        n = 0
        async with asyncio.timeout(10):
            while not fanout.closed_slow:
                server.services.hub.publish(
                    EventStartMessage(event=make_event(n, "cam1", boxes=500), ts=time.time())
                )
                n += 1
                await asyncio.sleep(0.001)
        assert fanout.client_count == 0
        # It held at most queue_size events before being dropped, never more.
        assert n < 50 + 400
        assert close_code(await closed_by_server(stuck, 15)) == 1013


@pytest.mark.slow
async def test_a_client_that_never_reads_again_is_dropped() -> None:
    # uvicorn closes connections gracefully, waiting for the write buffer to drain: for
    # ever with this client. The server lets go of it close_timeout + 1 s after giving up.
    limits = FanOutLimits(queue_size=50, slow_client_timeout=60, motion_interval=0)
    async with live_server(
        ["cam1"],
        limits=limits,
        options=WsOptions(close_timeout=1),
        ws=websocket_protocol(32768, abort_after=1.0),
    ) as server:
        stuck = await stuck_client(server)
        connections = server.uvicorn.server_state.connections
        assert len(connections) == 1
        n = 0
        async with asyncio.timeout(10):
            while not server.api.fanout.closed_slow:
                server.services.hub.publish(
                    EventStartMessage(event=make_event(n, "cam1", boxes=500), ts=time.time())
                )
                n += 1
                await asyncio.sleep(0.001)
        # The close frame cannot go out (1 s), then the connection is aborted (1 s more).
        await asyncio.sleep(3.5)
        assert len(connections) == 0
        stuck.transport.abort()
