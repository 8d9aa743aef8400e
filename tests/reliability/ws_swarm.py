"""Many WebSocket clients: ``python ws_swarm.py HOST PORT TOKEN COUNT stuck|read``.

Each client does a real WebSocket handshake (token in the subprotocol offer, like the
dashboard) with a tiny receive buffer. ``stuck`` clients then never read again;
``read`` clients read and discard everything, as fast as they can. Prints ``ready
COUNT`` once every handshake is done, and holds the connections until its standard
input closes.

A process of its own, so the test's measurement of the server's memory and latency
counts none of the clients' buffers or work.
"""

from __future__ import annotations

import base64
import os
import selectors
import socket
import sys
import threading


def handshakes(host: str, port: int, token: str, count: int) -> list[socket.socket]:
    """``count`` connected, upgraded sockets. Every request is sent before any answer is
    read, so the server works through the handshakes at its own pace."""
    socks = []
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((host, port))
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: motionhub, bearer.{token}"
            "\r\n\r\n"
        )
        sock.sendall(request.encode())
        socks.append(sock)
    for sock in socks:
        head = b""
        while b"\r\n\r\n" not in head:
            # What follows the headers (the hello) may come along: it is never looked at.
            chunk = sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed during the handshake")
            head += chunk
        status = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status:
            raise ConnectionError(f"handshake refused: {status!r}")
    return socks


def drain(socks: list[socket.socket], done: threading.Event) -> None:
    """Read and discard whatever arrives on ``socks`` until ``done``."""
    sel = selectors.DefaultSelector()
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    while not done.is_set():
        for key, _ in sel.select(0.1):
            sock: socket.socket = key.fileobj  # type: ignore[assignment]
            try:
                if not sock.recv(65536):
                    sel.unregister(sock)
            except (BlockingIOError, ConnectionError):
                pass
    sel.close()


def main() -> None:
    host, port, token, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    mode = sys.argv[5]
    socks = handshakes(host, port, token, count)
    done = threading.Event()
    reader = threading.Thread(target=drain, args=(socks, done)) if mode == "read" else None
    if reader is not None:
        reader.start()
    print(f"ready {len(socks)}", flush=True)
    sys.stdin.read()  # hold every connection until the parent lets go
    done.set()
    if reader is not None:
        reader.join()
    for s in socks:
        s.close()


if __name__ == "__main__":
    main()
