"""A ``/ws`` server process under load, for tests that need its memory and timing alone.

``python ws_load.py serve --port P --rate R`` runs the production ``/ws`` stack (uvicorn
on uvloop, :class:`server.ws.WebSocketApi`) over the in-memory core of
:mod:`ws_harness`, publishing ``event_start`` messages (with ``ts``, the publish time)
and ``motion`` messages for ``--cameras`` cameras at ``R`` per second until it is
terminated. Once it accepts connections it prints ``ready PORT``, the port it listens
on (with ``--port 0``, a free one it bound itself). ``GET /_stats`` reports the
fan-out's counters and the process's RSS.
Clients come from :mod:`server.bench.wsclient`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["main"]

# Run as a script: put the project root first (as pytest does, so that tests/detector
# cannot shadow the real package) and the shared test helpers (tests/) after it.
_TESTS = Path(__file__).resolve().parents[1]
sys.path[1:1] = [str(_TESTS.parent), str(_TESTS)]


# ---- the server side -----------------------------------------------------------------------


async def _publish(hub: object, args: argparse.Namespace) -> None:
    from ws_harness import make_event

    from server.bus import Hub
    from server.messages import EventStartMessage, MotionMessage

    assert isinstance(hub, Hub)
    period = 1.0 / args.rate
    n = 0
    start = time.monotonic()
    while True:
        camera = f"cam{n % args.cameras + 1}"
        event = make_event(n, camera, boxes=args.boxes)
        hub.publish(EventStartMessage(event=event, ts=time.time()))
        if not args.no_motion:
            hub.publish(MotionMessage(camera=camera, ts=time.time(), motion=True, score=0.2))
        n += 1
        await asyncio.sleep(max(0.0, start + n * period - time.monotonic()))


async def _serve(args: argparse.Namespace) -> None:
    import socket

    import uvicorn
    from uvicorn_harness import wait_started
    from ws_harness import FakeServices, build_app

    from server.bench.probe import proc_rss
    from server.config import WebSocketSettings
    from server.ws import FanOutLimits, WebSocketApi, uvicorn_options

    services = FakeServices([f"cam{i + 1}" for i in range(args.cameras)], auth=False)
    limits = FanOutLimits(
        queue_size=args.queue_size,
        slow_client_timeout=args.slow_timeout,
        max_clients=100_000,
        motion_interval=0,
    )
    api = WebSocketApi(services, limits=limits)
    app = build_app(api)

    @app.get("/_stats")
    async def stats() -> dict[str, Any]:
        fanout = api.fanout
        return {
            "clients": fanout.client_count,
            "behind": sum(1 for c in fanout.clients if c.backlog_since is not None),
            "closed_slow": fanout.closed_slow,
            "published": fanout.published,
            "rss": proc_rss(),
        }

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", args.port))
    ws = uvicorn_options(WebSocketSettings())
    config = uvicorn.Config(
        app,
        log_config=None,
        log_level="warning",
        backlog=4096,
        timeout_graceful_shutdown=2,
        **ws,
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    await wait_started(server, serving)
    print(f"ready {sock.getsockname()[1]}", flush=True)
    publishing = asyncio.create_task(_publish(services.hub, args))
    await serving  # until SIGTERM
    publishing.cancel()
    await asyncio.gather(publishing, return_exceptions=True)


def main() -> None:
    """``serve``: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve")
    serve.add_argument("--port", type=int, required=True, help="0: any free port")
    serve.add_argument("--rate", type=float, default=20.0, help="event messages per second")
    serve.add_argument("--cameras", type=int, default=8)
    serve.add_argument("--boxes", type=int, default=4, help="boxes per event (message size)")
    serve.add_argument("--queue-size", type=int, default=256)
    serve.add_argument("--slow-timeout", type=float, default=10.0)
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
