"""The server under test: ``motionhub serve`` plus one read-only route for the bench.

``python -m server.bench.probe --config FILE`` builds the app with
:func:`server.app.create_app` and serves it with the same uvicorn settings as
:func:`server.app.run`, so every measured frame takes the production path. It adds
``GET /_bench/stats``: per-camera counters (frames decoded, frames analysed, drops,
reconnects, events), the process's resident memory, CPU seconds per thread, event-loop
lag and the WebSocket and MQTT front ends' counters. The process exits when its stdin
closes, so it never outlives the bench that started it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse

__all__ = ["loop_lag_probe", "main", "proc_rss", "thread_cpu"]

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_LAG_PERIOD = 0.01


def proc_rss(pid: int | str = "self") -> int:
    """Resident set size of a process in bytes (``VmRSS`` from ``/proc``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def thread_cpu() -> dict[str, float]:
    """CPU seconds (user + system) of every thread of this process, by thread name.

    Python threads are named by :mod:`threading`; threads FFmpeg or other libraries start
    are summed under ``native``. Threads of the same name are added up.
    """
    names = {t.native_id: t.name for t in threading.enumerate()}
    out: dict[str, float] = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue  # the thread ended meanwhile
        fields = stat[stat.rindex(")") + 2 :].split()
        seconds = (int(fields[11]) + int(fields[12])) / _TICKS
        tid = int(task.name)
        name = names.get(tid, "native")
        if name.startswith("camera-"):
            name = "camera readers"
        elif name.startswith("asyncio_"):
            name = "asyncio workers"
        out[name] = out.get(name, 0.0) + seconds
    return out


class LagMeter:
    """How late the event loop runs a timer: a direct measure of a busy loop."""

    def __init__(self) -> None:
        self.samples: list[float] = []

    def take(self) -> list[float]:
        """Lag samples (seconds) since the last call."""
        out, self.samples = self.samples, []
        return out


async def loop_lag_probe(meter: LagMeter, period: float = _LAG_PERIOD) -> None:
    """Sleep ``period`` over and over, recording how much later than asked each wake-up was."""
    loop = asyncio.get_running_loop()
    while True:
        start = loop.time()
        await asyncio.sleep(period)
        meter.samples.append(max(0.0, loop.time() - start - period))
        if len(meter.samples) > 100_000:
            del meter.samples[:50_000]


def _stats(app: FastAPI, meter: LagMeter, started: float) -> dict[str, Any]:
    core = app.state.core
    cameras: dict[str, Any] = {}
    for cam_id in core.camera_ids():
        pipeline = core.pipeline(cam_id)
        reader = getattr(pipeline, "reader", None) if pipeline is not None else None
        status = getattr(reader, "status", None)
        cameras[cam_id] = {
            "state": getattr(status, "state", "offline"),
            "frames": getattr(status, "frames", 0),
            "dropped": getattr(status, "dropped", 0),
            "reconnects": getattr(status, "reconnects", 0),
            "decode_errors": getattr(status, "decode_errors", 0),
            "processed": pipeline.processed if pipeline is not None else 0,
            "events": pipeline.events if pipeline is not None else 0,
        }
    fanout = app.state.ws_api.fanout
    mqtt = getattr(app.state, "mqtt", None)
    lag = meter.take()
    return {
        "time": time.time(),
        "uptime": time.monotonic() - started,
        "pid": os.getpid(),
        "rss": proc_rss(),
        "threads": thread_cpu(),
        "cpu": sum(os.times()[:2]),
        "loop_lag": lag,
        "cameras": cameras,
        "ws": {
            "clients": fanout.client_count,
            "published": fanout.published,
            "closed_slow": fanout.closed_slow,
        },
        "mqtt": None
        if mqtt is None
        else {"events_published": mqtt.events_published, "outbox": len(mqtt.outbox)},
    }


def _watch_stdin(server: uvicorn.Server) -> None:
    """End the server when the parent closes our stdin (or dies)."""
    try:
        while sys.stdin.buffer.read(4096):
            pass
    except (OSError, ValueError):
        pass
    server.should_exit = True


def main(argv: list[str] | None = None) -> None:
    """Serve the config file's cameras with the bench route added."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)

    from server.app import GRACEFUL_HTTP_TIMEOUT, bind_host, create_app, register_secrets
    from server.config import load_settings
    from server.logs import setup_logging

    settings = load_settings(args.config)
    settings.server.port = args.port
    setup_logging(settings.logging.level, settings.logging.format)
    register_secrets(settings)
    app = create_app(settings)
    meter = LagMeter()
    started = time.monotonic()
    lag_task: list[asyncio.Task[None]] = []

    @app.get("/_bench/stats", include_in_schema=False)
    async def bench_stats() -> JSONResponse:
        if not lag_task:
            lag_task.append(asyncio.create_task(loop_lag_probe(meter), name="bench-lag"))
        return JSONResponse(_stats(app, meter, started))

    config = uvicorn.Config(
        app,
        host=bind_host(settings),
        port=settings.server.port,
        log_config=None,
        lifespan="on",
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_HTTP_TIMEOUT,
        ws_ping_interval=settings.server.websocket.ping_interval,
        ws_ping_timeout=settings.server.websocket.ping_timeout,
        backlog=4096,
    )
    server = uvicorn.Server(config)
    app.state.core.should_exit = lambda: server.should_exit
    threading.Thread(target=_watch_stdin, args=(server,), name="bench-stdin", daemon=True).start()
    server.run()


if __name__ == "__main__":
    main()
