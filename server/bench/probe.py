"""The server under test: ``motionhub serve`` plus one read-only route for the bench.

``python -m server.bench.probe --config FILE --port P`` runs :func:`server.app.run`, what
``motionhub serve`` runs, so every measured frame takes the production path; the only
difference is one more route on the app, ``GET /_bench/stats``: per-camera counters
(frames decoded, frames analysed, drops, reconnects, events), the process's resident
memory, CPU seconds per thread, event-loop lag, garbage-collector pauses and the WebSocket
and MQTT front ends' counters. The process exits when its stdin closes, so it never outlives
the bench that started it.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from fastapi import FastAPI
from fastapi.responses import JSONResponse

if TYPE_CHECKING:
    from server.config import Settings

T = TypeVar("T")

__all__ = [
    "GcMeter",
    "LagMeter",
    "Recorder",
    "cpu_seconds",
    "install",
    "loop_lag_probe",
    "main",
    "proc_rss",
    "proc_status_bytes",
    "thread_cpu",
    "thread_runqueue_wait",
]

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_LAG_PERIOD = 0.01


def proc_status_bytes(pid: int | str = "self") -> dict[str, int]:
    """The size fields (those in kB: ``VmRSS``, ``RssAnon``, ...) of a process's ``/proc``
    ``status``, in bytes: one reading of the file serves every measure taken from it."""
    sizes = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields = value.split()
        if len(fields) == 2 and fields[1] == "kB":
            sizes[key] = int(fields[0]) * 1024
    return sizes


def proc_rss(pid: int | str = "self") -> int:
    """Resident set size of a process in bytes (``VmRSS`` from ``/proc``)."""
    return proc_status_bytes(pid).get("VmRSS", 0)


def _stat_cpu(stat_file: Path) -> float:
    """User plus system CPU seconds from a ``/proc`` ``stat`` file (process or thread)."""
    stat = stat_file.read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def cpu_seconds(pid: int | None) -> float:
    """User plus system CPU seconds a process (all its threads) has used so far; 0 if it
    is gone or ``pid`` is None."""
    if pid is None:
        return 0.0
    try:
        return _stat_cpu(Path(f"/proc/{pid}/stat"))
    except OSError:
        return 0.0


def _runqueue_wait(schedstat_file: Path) -> float:
    """Seconds a thread has spent runnable but waiting for a CPU (``/proc`` ``schedstat``)."""
    return int(schedstat_file.read_text().split()[1]) / 1e9


def _per_thread(read: Callable[[Path], float], file: str) -> dict[str, float]:
    names = {t.native_id: t.name for t in threading.enumerate()}
    out: dict[str, float] = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            seconds = read(task / file)
        except OSError:
            continue  # the thread ended meanwhile
        tid = int(task.name)
        name = names.get(tid, "native")
        if name.startswith("camera-"):
            name = "camera readers"
        elif name.startswith("asyncio_"):
            name = "asyncio workers"
        out[name] = out.get(name, 0.0) + seconds
    return out


def thread_cpu() -> dict[str, float]:
    """CPU seconds (user + system) of every thread of this process, by thread name.

    Python threads are named by :mod:`threading`; threads FFmpeg or other libraries start
    are summed under ``native``. Threads of the same name are added up.
    """
    return _per_thread(_stat_cpu, "stat")


def thread_runqueue_wait() -> dict[str, float]:
    """Seconds each thread of this process has waited for a CPU while ready to run (the
    scheduler's run-queue delay), by thread name as in :func:`thread_cpu`; empty where the
    kernel keeps no ``schedstat``. Waiting for the GIL or for I/O is not in it."""
    try:
        return _per_thread(_runqueue_wait, "schedstat")
    except (OSError, ValueError, IndexError):
        return {}


class Recorder(Generic[T]):
    """Samples recorded since they were last taken, the newest ``keep`` of them (a probe
    nobody reads stays bounded)."""

    def __init__(self, keep: int = 100_000) -> None:
        self._samples: deque[T] = deque(maxlen=keep)

    def add(self, sample: T) -> None:
        self._samples.append(sample)

    def take(self) -> list[T]:
        """The samples since the last call, oldest first."""
        out = list(self._samples)
        self._samples.clear()
        return out


class LagMeter(Recorder[float]):
    """How late the event loop runs a timer (seconds): a direct measure of a busy loop."""


class GcMeter(Recorder[tuple[int, float]]):
    """The cyclic garbage collector's pauses, through :data:`gc.callbacks`: each collection's
    ``(generation, wall-clock seconds)`` (it holds the GIL throughout, so every thread waits)."""

    def __init__(self) -> None:
        super().__init__()
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        elif self._started:
            self.add((info["generation"], time.perf_counter() - self._started))


async def loop_lag_probe(meter: LagMeter, period: float = _LAG_PERIOD) -> None:
    """Sleep ``period`` over and over, recording how much later than asked each wake-up was."""
    loop = asyncio.get_running_loop()
    while True:
        start = loop.time()
        await asyncio.sleep(period)
        meter.add(max(0.0, loop.time() - start - period))


def _stats(app: FastAPI, meter: LagMeter, gcs: GcMeter, started: float) -> dict[str, Any]:
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
        "runqueue_wait": thread_runqueue_wait(),
        "cpu": sum(os.times()[:2]),
        "loop_lag": lag,
        "gc": gcs.take(),
        "cameras": cameras,
        "ws": {
            "clients": fanout.client_count,
            "published": fanout.published,
            "sent": sum(c.sent for c in fanout.clients),
            "closed_slow": fanout.closed_slow,
        },
        "mqtt": None
        if mqtt is None
        else {"events_published": mqtt.events_published, "outbox": len(mqtt.outbox)},
    }


def _watch_stdin() -> None:
    """SIGTERM ourselves (a graceful stop) when the parent closes our stdin or dies."""
    try:
        while sys.stdin.buffer.read(4096):
            pass
    except (OSError, ValueError):
        pass
    os.kill(os.getpid(), signal.SIGTERM)


def install(app: FastAPI) -> None:
    """Add ``GET /_bench/stats`` to ``app``."""
    meter = LagMeter()
    gcs = GcMeter()
    gc.callbacks.append(gcs)
    started = time.monotonic()
    lag_task: list[asyncio.Task[None]] = []

    @app.get("/_bench/stats", include_in_schema=False)
    async def bench_stats() -> JSONResponse:
        if not lag_task:
            lag_task.append(asyncio.create_task(loop_lag_probe(meter), name="bench-lag"))
        return JSONResponse(_stats(app, meter, gcs, started))


def main(argv: list[str] | None = None) -> None:
    """Run ``server.app.run`` on the config file, with the bench route added to the app."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)

    import server.app
    from server.heap import keep_large_blocks_mapped
    from server.settings_file import load_settings

    settings = load_settings(args.config)
    settings.server.port = args.port
    create_app = server.app.create_app

    def create_probed_app(settings: Settings) -> FastAPI:
        app = create_app(settings)
        install(app)
        return app

    # run() is what `motionhub serve` calls; only the app it builds gets one more route.
    server.app.create_app = create_probed_app
    threading.Thread(target=_watch_stdin, name="bench-stdin", daemon=True).start()
    keep_large_blocks_mapped()  # as `motionhub serve` does
    server.app.run(settings)


if __name__ == "__main__":
    main()
