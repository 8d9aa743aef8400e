"""uvicorn's httptools HTTP protocol with a bound on the request head.

httptools buffers a request line and headers of any length: a client that sends an endless
header would grow the server's memory without end. This protocol counts the bytes of each
request head as they arrive and, once a head is larger than ``max_head_bytes`` and still
not complete, answers 431 with a JSON message and closes the connection (as nginx and Node
do with their header buffers). Bodies are not counted here (see ``server.max_body_bytes``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["http_protocol"]

log = logging.getLogger(__name__)


def http_protocol(max_head_bytes: int) -> type[asyncio.Protocol]:
    """The protocol class for uvicorn's ``http`` option, refusing heads over ``max_head_bytes``."""
    body = json.dumps(
        {"detail": f"request line and headers larger than {max_head_bytes} bytes"}
    ).encode()
    refusal = b"".join(
        [
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n",
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(body)).encode() + b"\r\n",
            b"connection: close\r\n\r\n",
            body,
        ]
    )

    class BoundedHttpToolsProtocol(HttpToolsProtocol):
        _in_head = True  # a connection starts with a request head
        _head_bytes = 0
        _refused = False

        def data_received(self, data: bytes) -> None:
            if self._refused:
                return  # answered and closing: nothing more is parsed
            if self._in_head:
                self._head_bytes += len(data)
            super().data_received(data)
            # Only a head that is still incomplete after this many bytes is refused: a
            # chunk that ends one head and carries the body after it is fine.
            if self._in_head and self._head_bytes > max_head_bytes:
                self._refuse()

        def on_headers_complete(self) -> None:
            if self._refused:
                return
            self._in_head = False
            self._head_bytes = 0
            # A head that arrived whole in one read: measured now that it is parsed.
            size = len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)
            if size > max_head_bytes:
                self._refuse()
                return
            super().on_headers_complete()

        def on_body(self, body: bytes) -> None:
            if not self._refused:
                super().on_body(body)

        def on_message_complete(self) -> None:
            if self._refused:
                return
            self._in_head = True  # what follows on this connection is the next head
            super().on_message_complete()

        def handle_websocket_upgrade(self) -> None:
            if not self._refused:
                super().handle_websocket_upgrade()

        def _refuse(self) -> None:
            self._refused = True
            if self.transport.is_closing():
                return
            client: Any = self.client
            log.warning(
                "request head from %s over %d bytes: answered 431",
                client[0] if client else "?",
                max_head_bytes,
            )
            self.transport.write(refusal)
            self.transport.close()

    BoundedHttpToolsProtocol.__qualname__ = f"BoundedHttpToolsProtocol[{max_head_bytes}]"
    return BoundedHttpToolsProtocol
