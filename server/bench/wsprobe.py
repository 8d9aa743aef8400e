"""WebSocket probe clients in a process of their own, for the ``latency`` suite.

``python -m server.bench.wsprobe HOST PORT`` holds a few ``/ws`` connections
(:class:`~server.bench.wsclient.WsClient`) and is driven by one command per line on stdin:

* ``connect``: open one more probe; once the server has greeted it (so it is in the server's
  fan-out, after every connection greeted before it) answer ``connected N`` (N probes open);
* ``record``: record delays from now on; answer ``recording``;
* ``stop``: stop recording, answer one JSON line, ``{"motion": [[s, ...], ...],
  "event_start": [[s, ...], ...]}``, the delays in seconds of each probe in the order they
  were opened, then close the probes and exit.

Like a viewer's browser, a probe does not share its process with the hundreds of load
clients: when a message goes out to all of them, its arrival stamp does not wait for the
load generator to read the other sockets, so its delay is the server's.
"""

from __future__ import annotations

import asyncio
import json
import sys

from server.bench.harness import run_clients
from server.bench.wsclient import WsClient, close_all

__all__ = ["CONNECT_TIMEOUT_S", "main"]

CONNECT_TIMEOUT_S = 30.0


async def _open(host: str, port: int) -> WsClient:
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(CONNECT_TIMEOUT_S):
        _, probe = await loop.create_connection(lambda: WsClient(host, port), host, port)
        await probe.ready
        await probe.greeted
    return probe


async def _serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    commands = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)
    probes: list[WsClient] = []
    try:
        while line := await commands.readline():
            command = line.decode().strip()
            if command == "connect":
                probes.append(await _open(host, port))
                print(f"connected {len(probes)}", flush=True)
            elif command == "record":
                for p in probes:
                    p.recording = True
                print("recording", flush=True)
            elif command == "stop":
                for p in probes:
                    p.recording = False
                delays = {
                    "motion": [p.log.motion_delays for p in probes],
                    "event_start": [p.log.event_delays for p in probes],
                }
                print(json.dumps(delays), flush=True)
                return
            else:
                raise ValueError(f"unknown command {command!r}")
    finally:
        await close_all(probes)


def main(argv: list[str] | None = None) -> None:
    """Serve commands on stdin until ``stop`` or the end of stdin."""
    host, port = (argv if argv is not None else sys.argv[1:])[:2]
    run_clients(_serve(host, int(port)))


if __name__ == "__main__":
    main()
