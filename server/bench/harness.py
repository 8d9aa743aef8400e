"""What the bench suites share: simulated cameras, the server under test, a broker, ffmpeg.

Everything runs on loopback and is bounded in time: every child process is started
with a pipe as stdin and exits when it closes, and every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Coroutine, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import yaml

from clients.sim.process import ChildServer, free_port, port_open, reap
from server.bench.probe import cpu_seconds, proc_rss

T = TypeVar("T")

__all__ = [
    "BenchError",
    "ProbeServer",
    "camera_config",
    "clip",
    "cpu_rate",
    "cpu_seconds",
    "distribution",
    "ffmpeg_decode_rate",
    "machine",
    "mosquitto",
    "raise_fd_limit",
    "rate",
    "run_clients",
    "thread_rates",
    "verdict",
]

FFMPEG = "ffmpeg"
MOSQUITTO = "/usr/sbin/mosquitto"


class BenchError(RuntimeError):
    """A suite could not set up or run its load; the message says why."""


def machine() -> dict[str, Any]:
    """Cores, CPU model, load and software versions, for the record."""
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "load_avg": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def run_clients(main: Coroutine[Any, Any, T]) -> T:
    """Run a load generator's coroutine on uvloop when it is installed (as uvicorn does for
    the server), so that thousands of clients in one process cost less per message and the
    measured delays are more the server's than the load generator's."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard] on Linux
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def verdict(meets: bool) -> str:
    """How a summary table marks a target: met, or missed in bold."""
    return "met" if meets else "**missed**"


def raise_fd_limit(wanted: int) -> int:
    """Raise this process's open-file limit towards ``wanted`` (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def clip(width: int, height: int, fps: float, *, seed: int = 11, period: float = 4.0) -> Path:
    """A cached H.264 clip of a procedural scene: objects moving for half of every
    ``period`` seconds, still for the other half (so events start and end)."""
    from clients.sim import SceneSpec, render_clip

    spec = SceneSpec(
        width=width,
        height=height,
        fps=fps,
        seed=seed,
        objects=3,
        active_seconds=period / 2,
        still_seconds=period / 2,
        loop_seconds=period,
    )
    return render_clip(spec)


def camera_config(
    cam_id: str,
    url: str,
    *,
    fps: float = 10.0,
    min_frames: int = 1,
    off_delay: float = 0.5,
) -> dict[str, Any]:
    """One camera's config entry as the bench uses it."""
    return {
        "id": cam_id,
        "url": url,
        "detect": {"fps": fps},
        "events": {"min_frames": min_frames, "off_delay": off_delay},
    }


def distribution(values: Sequence[float], scale: float = 1000.0) -> dict[str, float]:
    """p50/p90/p99/max/mean of ``values`` times ``scale`` (seconds to ms by default)."""
    if not values:
        return {"count": 0}
    arr = np.asarray(values, dtype=np.float64) * scale
    return {
        "count": int(arr.size),
        "p50": round(float(np.percentile(arr, 50)), 3),
        "p90": round(float(np.percentile(arr, 90)), 3),
        "p99": round(float(np.percentile(arr, 99)), 3),
        "max": round(float(arr.max()), 3),
        "mean": round(float(arr.mean()), 3),
    }


def rate(before: dict[str, Any], after: dict[str, Any], key: str) -> float:
    """Frames per second of counter ``key`` summed over cameras, between two stats."""
    elapsed = float(after["uptime"]) - float(before["uptime"])
    if elapsed <= 0:
        return 0.0
    total: float = sum(
        float(cam[key]) - float(before["cameras"].get(cid, {}).get(key, 0))
        for cid, cam in after["cameras"].items()
    )
    return float(total) / elapsed


def cpu_rate(before: dict[str, Any], after: dict[str, Any]) -> float:
    """CPU seconds per second the server used between two stats."""
    return float(after["cpu"] - before["cpu"]) / float(after["uptime"] - before["uptime"])


def thread_rates(
    before: dict[str, Any], after: dict[str, Any], key: str = "threads"
) -> dict[str, float]:
    """Seconds per second of each kind of server thread between two stats: CPU time by
    default, or another per-thread record of the probe (``key="runqueue_wait"``)."""
    elapsed = after["uptime"] - before["uptime"]
    return {
        name: round((secs - before.get(key, {}).get(name, 0.0)) / elapsed, 3)
        for name, secs in after.get(key, {}).items()
    }


class ProbeServer:
    """``motionhub serve`` with the bench route (:mod:`server.bench.probe`) in a child process.

    ``cpus`` pins it (``taskset``) to those CPUs; ``env`` adds environment variables.
    """

    def __init__(
        self,
        settings: dict[str, Any],
        workdir: Path,
        *,
        cpus: Sequence[int] | None = None,
        env: dict[str, str] | None = None,
        ready_timeout: float = 60.0,
    ) -> None:
        self.port = free_port()
        self.workdir = workdir
        data = workdir / f"data-{self.port}"
        settings = {
            **settings,
            "server": {**settings.get("server", {}), "host": "127.0.0.1", "port": self.port},
            "storage": {"path": str(data)},
            "logging": {"level": "WARNING"},
        }
        self.config = workdir / f"server-{self.port}.yml"
        self.config.write_text(yaml.safe_dump(settings))
        argv = [sys.executable, "-m", "server.bench.probe"]
        argv += ["--config", str(self.config), "--port", str(self.port)]
        if cpus is not None:
            argv = ["taskset", "-c", ",".join(map(str, cpus)), *argv]
        self._child = ChildServer(
            argv,
            host="127.0.0.1",
            port=self.port,
            name="motionhub server",
            env=env,
            ready_timeout=ready_timeout,
            stop_timeout=10.0,
        )

    @property
    def pid(self) -> int:
        """The server's process id (it must be running)."""
        pid = self._child.pid
        if pid is None:
            raise BenchError(f"the server is not running:\n{self._child.output()}")
        return pid

    @property
    def ws_url(self) -> tuple[str, int]:
        """Host and port of ``/ws``."""
        return "127.0.0.1", self.port

    def start(self) -> ProbeServer:
        """Start and wait until it answers."""
        try:
            self._child.start()
        except Exception as exc:
            raise BenchError(str(exc)) from None
        return self

    def stop(self) -> None:
        """SIGTERM, a graceful stop, and reap."""
        self._child.stop()

    def stats(self) -> dict[str, Any]:
        """The server's ``/_bench/stats``."""
        url = f"http://127.0.0.1:{self.port}/_bench/stats"
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                data: dict[str, Any] = json.loads(resp.read())
        except OSError as exc:
            raise BenchError(f"server stats unavailable: {exc}\n{self._child.output()}") from None
        return data

    def add_camera(self, camera: dict[str, Any]) -> None:
        """Add a camera through the REST API (``POST /api/cameras``)."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/api/cameras",
            data=json.dumps(camera).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            # A fixed http://127.0.0.1 URL: no other scheme can reach this call.
            with urllib.request.urlopen(request, timeout=30) as resp:  # noqa: S310
                resp.read()
        except OSError as exc:
            raise BenchError(f"adding camera {camera['id']} failed: {exc}") from None

    def rss(self) -> int:
        """Resident memory of the server process, bytes."""
        return proc_rss(self.pid)

    def wait_online(self, count: int, timeout: float = 60.0, analysed: bool = True) -> None:
        """Wait until ``count`` cameras are online and (with ``analysed``) have each had a
        frame through the detector."""
        deadline = time.monotonic() + timeout
        last: dict[str, Any] = {}
        while time.monotonic() < deadline:
            last = self.stats()
            ready = [
                c
                for c in last["cameras"].values()
                if c["state"] == "online" and (c["processed"] > 0 or not analysed)
            ]
            if len(ready) >= count:
                return
            time.sleep(0.25)
        raise BenchError(
            f"only some cameras came online within {timeout:g} s: {last.get('cameras')}\n"
            f"{self._child.output()}"
        )

    def output(self) -> str:
        """The tail of the server's log."""
        return self._child.output()

    def __enter__(self) -> ProbeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def mosquitto(workdir: Path) -> Iterator[str]:
    """A private Mosquitto on a free loopback port; yields its ``mqtt://`` URL."""
    if not Path(MOSQUITTO).exists():
        raise BenchError(f"{MOSQUITTO} is not installed")
    port = free_port()
    conf = workdir / f"mosquitto-{port}.conf"
    conf.write_text(
        "\n".join(
            [
                f"listener {port} 127.0.0.1",
                f"user {getpass.getuser()}",
                "persistence false",
                "allow_anonymous true",
                "max_queued_messages 100000",
                "log_type error",
            ]
        )
        + "\n"
    )
    broker = ChildServer([MOSQUITTO, "-c", str(conf)], host="127.0.0.1", port=port, name="broker")
    try:
        broker.start()
    except Exception as exc:
        raise BenchError(str(exc)) from None
    try:
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        broker.stop()


@dataclass
class _Progress:
    samples: list[tuple[float, int]]


def ffmpeg_decode_rate(
    urls: Sequence[str],
    window: float,
    *,
    settle: float = 2.0,
    start_timeout: float = 60.0,
    threads: int | None = None,
) -> dict[str, Any]:
    """Decode-only frames per second of ``ffmpeg -rtsp_transport tcp -i URL -f null -``,
    one process per URL all at once, summed, over ``window`` seconds after each has
    decoded for ``settle`` seconds. ``threads`` sets ``-threads`` (default: FFmpeg's)."""
    if shutil.which(FFMPEG) is None:
        raise BenchError("ffmpeg is not installed")
    progress = [_Progress([]) for _ in urls]
    procs: list[subprocess.Popen[bytes]] = []
    readers: list[threading.Thread] = []

    def follow(proc: subprocess.Popen[bytes], into: _Progress) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith(b"frame="):
                into.samples.append((time.monotonic(), int(line[6:])))

    errors = tempfile.TemporaryFile()  # noqa: SIM115 (closed below)
    try:
        for url, prog in zip(urls, progress, strict=True):
            argv = [FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error"]
            if threads is not None:
                argv += ["-threads", str(threads)]
            argv += ["-rtsp_transport", "tcp", "-i", url]
            argv += ["-progress", "pipe:1", "-stats_period", "0.25", "-f", "null", "-"]
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=errors)
            procs.append(proc)
            thread = threading.Thread(target=follow, args=(proc, prog), daemon=True)
            thread.start()
            readers.append(thread)
        deadline = time.monotonic() + start_timeout
        while not all(p.samples and p.samples[-1][1] > 0 for p in progress):
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise BenchError(f"ffmpeg did not start decoding: {_tail(errors)}")
            time.sleep(0.1)
        time.sleep(settle)
        t0 = time.monotonic()
        start = [p.samples[-1][1] for p in progress]
        cpu0 = sum(cpu_seconds(p.pid) for p in procs)
        time.sleep(window)
        t1 = time.monotonic()
        end = [p.samples[-1][1] for p in progress]
        cpu1 = sum(cpu_seconds(p.pid) for p in procs)
        if any(p.poll() is not None for p in procs):
            raise BenchError(f"ffmpeg stopped while measured: {_tail(errors)}")
    finally:
        _stop_all(procs, readers)
        errors.seek(0)
        log = errors.read().decode(errors="replace")
        errors.close()
    per_stream = [(b - a) / (t1 - t0) for a, b in zip(start, end, strict=True)]
    frames = sum(end) - sum(start)
    return {
        "fps": sum(per_stream),
        "cpu_ms_per_frame": (cpu1 - cpu0) / frames * 1000 if frames else None,
        "per_stream": [round(x, 1) for x in per_stream],
        "errors": len([line for line in log.splitlines() if line.strip()]),
    }


def _stop_all(procs: list[subprocess.Popen[bytes]], readers: list[threading.Thread]) -> None:
    """Terminate (then kill) every process, reap it, and close its output pipe once the
    thread reading it is done."""
    reap(procs, timeout=5.0)
    for thread in readers:
        thread.join(5)
    for proc in procs:
        if proc.stdout is not None:
            proc.stdout.close()


def _tail(errors: Any) -> str:
    errors.flush()
    errors.seek(0)
    text: str = errors.read().decode(errors="replace")
    return text[-2000:]


def wait_port(port: int, timeout: float = 10.0) -> None:
    """Wait until something listens on loopback ``port``."""
    deadline = time.monotonic() + timeout
    while not port_open("127.0.0.1", port, timeout=0.2):
        if time.monotonic() > deadline:
            raise BenchError(f"nothing listens on port {port} after {timeout:g} s")
        time.sleep(0.05)
