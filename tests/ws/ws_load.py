"""Load generation for ``/ws``: many light clients and a server process that publishes.

:class:`RawClient` speaks just enough RFC 6455 to be cheap at thousands of connections
in one process (the ``websockets`` client costs more per message than the server under
test): it never offers compression, answers pings, and measures the delivery latency of
every message that carries a ``ts`` (publish time, Unix seconds). A client created with
``read=False`` completes the handshake and then never reads again.

``python ws_load.py serve --port P --rate R`` runs the server side: the production
``/ws`` stack over an in-memory core, publishing ``event_start`` (with ``ts``) and
``motion`` messages for ``--cameras`` cameras at ``R`` per second in total.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["RawClient", "connect_many", "percentile"]

_TS = b'"ts":'


@dataclass
class Stats:
    """What one client saw."""

    latencies: list[float] = field(default_factory=list)
    messages: int = 0
    close_code: int | None = None
    closed: bool = False


class RawClient(asyncio.Protocol):
    """A minimal WebSocket client connection (see the module docstring)."""

    def __init__(self, path: str, protocols: Sequence[str], read: bool = True) -> None:
        self.path = path
        self.protocols = protocols
        self.read = read
        self.stats = Stats()
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._buffer = bytearray()
        self._handshaken = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        proto = f"Sec-WebSocket-Protocol: {', '.join(self.protocols)}\r\n" if self.protocols else ""
        transport.write(
            (
                f"GET {self.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\n{proto}\r\n"
            ).encode()
        )

    def data_received(self, data: bytes) -> None:
        now = time.time()
        buf = self._buffer
        buf += data
        if not self._handshaken:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buf[: buf.find(b"\r\n")])
            del buf[: end + 4]
            if b" 101 " not in status:
                self.opened.set_exception(ConnectionError(status.decode(errors="replace")))
                return
            self._handshaken = True
            self.opened.set_result(None)
            if not self.read:
                assert self.transport is not None
                self.transport.pause_reading()
                return
        self._frames(now)

    def _frames(self, now: float) -> None:
        buf = self._buffer
        while len(buf) >= 2:
            opcode = buf[0] & 0x0F
            length = buf[1] & 0x7F
            start = 2
            if length == 126:
                if len(buf) < 4:
                    return
                length = struct.unpack_from("!H", buf, 2)[0]
                start = 4
            elif length == 127:
                if len(buf) < 10:
                    return
                length = struct.unpack_from("!Q", buf, 2)[0]
                start = 10
            if len(buf) < start + length:
                return
            payload = bytes(buf[start : start + length])
            del buf[: start + length]
            if opcode == 0x1:
                self.stats.messages += 1
                i = payload.rfind(_TS)
                if i >= 0:
                    j = i + len(_TS)
                    k = j
                    while k < len(payload) and payload[k] not in b",}":
                        k += 1
                    self.stats.latencies.append(now - float(payload[j:k]))
            elif opcode == 0x9:
                self._send(0xA, payload)
            elif opcode == 0x8:
                self.stats.close_code = struct.unpack_from("!H", payload)[0] if payload else None

    def _send(self, opcode: int, payload: bytes) -> None:
        assert self.transport is not None
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.transport.write(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked)

    def send_text(self, text: str) -> None:
        """Send one (short) text message."""
        data = text.encode()
        assert len(data) < 126
        self._send(0x1, data)

    def resume_reading(self) -> None:
        """Start reading again (a client that was stuck catches up)."""
        assert self.transport is not None
        self.read = True
        self.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.stats.closed = True
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed during handshake"))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()


async def connect_many(
    port: int,
    count: int,
    *,
    read: bool = True,
    protocols: Sequence[str] = ("motionhub",),
    batch: int = 100,
) -> list[RawClient]:
    """Open ``count`` clients to ``ws://127.0.0.1:port/ws``, ``batch`` at a time."""
    loop = asyncio.get_running_loop()
    clients: list[RawClient] = []
    for first in range(0, count, batch):
        made = [RawClient("/ws", protocols, read) for _ in range(min(batch, count - first))]
        for client in made:
            await loop.create_connection(lambda c=client: c, "127.0.0.1", port)  # type: ignore[misc]
        await asyncio.wait_for(asyncio.gather(*(c.opened for c in made)), 30)
        clients += made
    return clients


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) by nearest rank."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


# ---- the server side -----------------------------------------------------------------------


async def _publish(hub: object, args: argparse.Namespace) -> None:
    from ws_harness import make_event

    from server.bus import Hub
    from server.messages import EventStartMessage, MotionMessage

    assert isinstance(hub, Hub)
    rate, cameras, seconds, boxes = args.rate, args.cameras, args.seconds, args.boxes
    motion = not args.no_motion
    period = 1.0 / rate
    n = 0
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        camera = f"cam{n % cameras + 1}"
        hub.publish(EventStartMessage(event=make_event(n, camera, boxes=boxes), ts=time.time()))
        if motion:
            hub.publish(MotionMessage(camera=camera, ts=time.time(), motion=True, score=0.2))
        n += 1
        await asyncio.sleep(max(0.0, start + n * period - time.monotonic()))


async def _serve(args: argparse.Namespace) -> None:
    import socket

    import uvicorn
    from ws_harness import FakeServices, build_app, wait_started

    from server.ws import FanOutLimits, WebSocketApi

    services = FakeServices([f"cam{i + 1}" for i in range(args.cameras)], auth=False)
    limits = FanOutLimits(
        queue_size=args.queue_size,
        slow_client_timeout=args.slow_timeout,
        max_clients=100_000,
        motion_interval=0,
    )
    api = WebSocketApi(services, limits=limits)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", args.port))
    config = uvicorn.Config(
        build_app(api),
        log_config=None,
        log_level="warning",
        backlog=4096,
        ws_per_message_deflate=not args.no_deflate,
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    await wait_started(server, serving)
    print("ready", flush=True)
    await asyncio.sleep(args.delay)
    await _publish(services.hub, args)
    print(f"published closed_slow={api.fanout.closed_slow}", flush=True)
    server.should_exit = True
    await serving


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve")
    serve.add_argument("--port", type=int, required=True)
    serve.add_argument("--rate", type=float, default=20.0, help="event messages per second")
    serve.add_argument("--cameras", type=int, default=8)
    serve.add_argument("--seconds", type=float, default=10.0, help="how long to publish")
    serve.add_argument("--delay", type=float, default=0.0, help="wait before publishing")
    serve.add_argument("--boxes", type=int, default=4, help="boxes per event (message size)")
    serve.add_argument("--queue-size", type=int, default=256)
    serve.add_argument("--slow-timeout", type=float, default=10.0)
    serve.add_argument("--no-deflate", action="store_true")
    serve.add_argument("--no-motion", action="store_true", help="publish events only")
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] brings it
        asyncio.run(_serve(args))
    else:
        # The loop production runs on (uvicorn picks uvloop when it is installed).
        uvloop.run(_serve(args))


if __name__ == "__main__":
    main()
