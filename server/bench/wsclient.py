"""A lean WebSocket load client: thousands of ``/ws`` connections in one asyncio process.

A client per connection costs a few microseconds per message here (an ``asyncio.Protocol``
that parses frames itself and looks only at the messages it measures), so that the
measured delay is the server's, not the load generator's. Every message is stamped with
``time.time()`` as its bytes come off the socket; a message's delay is that stamp minus
the capture time (``ts``) the server put in it, both on this machine's clock.

A client can :meth:`WsClient.stall`: it stops reading, like a frozen browser tab, and its
socket buffers fill up.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

__all__ = ["ClientLog", "WsClient", "close_all", "connect_many"]

_MOTION = b'{"type":"motion"'
_HELLO = b'{"type":"hello"'
_EVENT_START = b'{"type":"event_start"'


@dataclass
class ClientLog:
    """What one client saw."""

    motion_delays: list[float] = field(default_factory=list)
    event_delays: list[float] = field(default_factory=list)
    starts: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Every ``event_start`` received: its event id -> (capture time ``ts``, arrival)."""
    closed_code: int | None = None


class WsClient(asyncio.Protocol):
    """One ``/ws`` connection that records delays of ``motion`` and ``event_start``."""

    def __init__(self, host: str, port: int, *, record_motion: bool = True) -> None:
        self.host = host
        self.port = port
        self.record_motion = record_motion
        self.log = ClientLog()
        self.recording = False
        """Delays are recorded only while this is true (events are always collected)."""
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.greeted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        """Done at the server's ``hello``, which it sends once this client is in its fan-out."""
        self._transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._upgraded = False
        self._partial = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, but have its methods.
        transport = cast("asyncio.Transport", transport)
        self._transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            (
                f"GET /ws HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"connection lost during handshake: {exc}"))
        if not self.closed.done():
            self.closed.set_result(None)

    def stall(self) -> None:
        """Stop reading from the socket (the server's sends back up)."""
        if self._transport is not None:
            self._transport.pause_reading()

    def close(self) -> None:
        """Drop the connection."""
        if self._transport is not None:
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
        now = time.time()
        buf = self._buf
        buf += data
        if not self._upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buf[: buf.find(b"\r\n")])
            del buf[: end + 4]
            if b" 101 " not in status:
                self.ready.set_exception(ConnectionError(status.decode(errors="replace")))
                self.close()
                return
            self._upgraded = True
            self.ready.set_result(None)
        self._frames(buf, now)

    def _frames(self, buf: bytearray, now: float) -> None:
        while len(buf) >= 2:
            b0, b1 = buf[0], buf[1]
            length = b1 & 0x7F
            head = 2
            if length == 126:
                if len(buf) < 4:
                    return
                length, head = int.from_bytes(buf[2:4]), 4
            elif length == 127:
                if len(buf) < 10:
                    return
                length, head = int.from_bytes(buf[2:10]), 10
            if b1 & 0x80:
                head += 4  # a masked frame (servers never send one, but stay in sync)
            if len(buf) < head + length:
                return
            payload = bytes(buf[head : head + length])
            del buf[: head + length]
            opcode, fin = b0 & 0x0F, b0 & 0x80
            if opcode in (0, 1):
                self._partial += payload
                if fin:
                    message, self._partial = bytes(self._partial), bytearray()
                    self._message(message, now)
            elif opcode == 9:
                self._send(0xA, payload)
            elif opcode == 8:
                self.log.closed_code = int.from_bytes(payload[:2]) if len(payload) >= 2 else None
                self._send(0x8, payload[:2])
                self.close()
                return

    def _message(self, message: bytes, now: float) -> None:
        log = self.log
        if message.startswith(_MOTION):
            if self.recording and self.record_motion:
                log.motion_delays.append(now - json.loads(message)["ts"])
        elif message.startswith(_EVENT_START):
            body = json.loads(message)
            log.starts[body["event"]["id"]] = (body["ts"], now)
            if self.recording:
                log.event_delays.append(now - body["ts"])
        elif message.startswith(_HELLO) and not self.greeted.done():
            self.greeted.set_result(None)

    def _send(self, opcode: int, payload: bytes) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self._transport.write(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked)


async def connect_many(
    host: str,
    port: int,
    count: int,
    *,
    batch: int = 100,
    record_motion: bool = True,
    progress: Callable[[str], None] | None = None,
    within: float = 300.0,
) -> list[WsClient]:
    """Open ``count`` connections, ``batch`` at a time, each past its handshake, all within
    ``within`` seconds."""
    loop = asyncio.get_running_loop()
    clients: list[WsClient] = []
    async with asyncio.timeout(within):
        for start in range(0, count, batch):
            made = []
            for _ in range(min(batch, count - start)):
                made.append(
                    loop.create_connection(
                        lambda: WsClient(host, port, record_motion=record_motion), host, port
                    )
                )
            for _, proto in await asyncio.gather(*made):
                clients.append(proto)
            await asyncio.gather(*(c.ready for c in clients[start:]))
            if progress is not None and (start // batch) % 5 == 4:
                progress(f"{len(clients)} WebSocket clients connected")
    return clients


async def close_all(clients: list[WsClient]) -> None:
    """Drop every connection and let the loop see them go."""
    for c in clients:
        c.close()
    await asyncio.sleep(0)
