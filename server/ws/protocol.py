"""How uvicorn should run WebSocket connections for ``/ws``.

Two things uvicorn's own WebSocket protocol leaves open, both about clients that stop
reading, are closed here:

* Linux grows a TCP socket's send buffer up to ``net.ipv4.tcp_wmem`` (4 MB by default),
  even for a peer that has stopped reading. Without a cap, each such client parks
  megabytes of kernel memory on the server before the fan-out even notices it is behind
  (uvicorn only stops writing once the kernel refuses more). The send buffer is fixed at
  ``send_buffer`` bytes, so a stuck client is found within a few hundred kilobytes.
* uvicorn ends a connection with a graceful ``transport.close()``, which waits until the
  write buffer has drained: for ever, for a peer that never reads again, keeping its
  socket and buffers. Once the application is done with a connection, the transport is
  aborted if it is still open ``abort_after`` seconds later.

It also offers the fan-out a synchronous send (``scope["motionhub.send_now"]``): the same
transport write as uvicorn's ASGI ``send``, without the awaits and per-message dispatch
around it, for a connection that can take frames right now, with all of a client's ready
messages in one write; and, for connections without compression, the frames websockets
built once for every client instead of one per client.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State

from server.ws.fanout import SEND_NOW_KEY, Outgoing

if TYPE_CHECKING:
    from server.config import WebSocketSettings

__all__ = ["uvicorn_options", "websocket_protocol"]


def websocket_protocol(send_buffer: int, abort_after: float) -> type[asyncio.Protocol]:
    """uvicorn's sans-I/O WebSocket protocol with ``SO_SNDBUF`` set to ``send_buffer``
    bytes (Linux doubles it for bookkeeping), and connections the application has finished
    with dropped if they are still open ``abort_after`` seconds later."""

    class BoundedWebSocketProtocol(WebSocketsSansIOProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                # Not every transport has a real socket (TLS wrappers differ); the cap is
                # a safeguard, the connection works without it.
                with contextlib.suppress(OSError, AttributeError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
            super().connection_made(transport)

        def send_now(self, messages: Sequence[Outgoing]) -> bool:
            """Write ``messages``, one text frame each, in one transport write; ``False``
            (nothing written) unless the connection is open and its transport is not asking
            writers to pause."""
            conn = self.conn
            if (
                not self.handshake_complete
                or self.close_sent
                or self.disconnected
                or self.initial_response is not None
                or not self.writable.is_set()
                or self.transport.is_closing()
                or conn.state is not State.OPEN
                or conn.expect_continuation_frame
            ):
                return False  # the ASGI send waits, or reports why it cannot send
            if conn.extensions:
                # Compression keeps per-connection state: websockets frames it for this one.
                for message in messages:
                    conn.send_text(message.utf8)
                self.transport.write(b"".join(conn.data_to_send()))
                return True
            # Normally empty: uvicorn flushes after each read.
            frames = conn.data_to_send()
            # Without extensions every connection's frame for a message is the same bytes,
            # which websockets built once for all of them.
            frames.extend(message.frame for message in messages)
            self.transport.write(frames[0] if len(frames) == 1 else b"".join(frames))
            return True

        async def run_asgi(self) -> None:
            self.scope[SEND_NOW_KEY] = self.send_now  # type: ignore[typeddict-unknown-key]
            try:
                await super().run_asgi()
            finally:
                if not self.disconnected:
                    self.loop.call_later(abort_after, self._abort_if_open)

        def _abort_if_open(self) -> None:
            if not self.disconnected:
                self.transport.abort()

    BoundedWebSocketProtocol.__qualname__ = f"BoundedWebSocketProtocol[{send_buffer}]"
    return BoundedWebSocketProtocol


def uvicorn_options(ws: WebSocketSettings) -> dict[str, Any]:
    """The ``uvicorn.Config`` keyword arguments for ``/ws``: protocol, heartbeat and
    compression. Use them wherever the app is served, so tests and benchmarks run the
    production settings."""
    return {
        "ws": websocket_protocol(ws.send_buffer, abort_after=ws.close_timeout + 1.0),
        "ws_ping_interval": ws.ping_interval,
        "ws_ping_timeout": ws.ping_timeout,
        "ws_per_message_deflate": ws.compression,
    }
