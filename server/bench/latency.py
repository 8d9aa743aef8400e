"""The ``latency`` bench suite: from a frame leaving the decoder to its message arriving.

Eight simulated RTSP cameras at 15 frames/s (1080p; each scene alternates moving and
still phases, with different periods so events do not all coincide), 200 WebSocket load
clients connected and reading, ten WebSocket probe clients, and one MQTT subscriber on a
private Mosquitto.

The server stamps each frame with ``time.time()`` as it comes out of the decoder; a
``motion`` message carries that time as ``ts``, and an ``event_start`` the time of the frame
that started the event (``events.min_frames`` is 1 here, so that is the frame whose
analysis published it). A receiver's delay is its clock at arrival minus ``ts``; sender
and receivers share this machine's clock.

The WebSocket figure is the probes': a few connections in a process of their own
(:mod:`server.bench.wsprobe`), as a viewer's browser is. The load clients all share one
process, which reads their sockets one after the other when a message goes out to all of
them, so their delays also hold the load generator's own work and its waits for a CPU; they
are still reported (``ws_load_clients_*``) so that earlier runs, whose WebSocket figure they
were, stay comparable. The server sends to its clients in the order they connected, and the
probes are opened one after each batch of load clients, so they sit spread through that order,
from near the front to last; each probe's own distribution shows whether its place matters.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from clients.sim import RtspCamera
from server.bench import BenchContext, SuiteResult
from server.bench.harness import (
    ProbeServer,
    camera_config,
    clip,
    cpu_rate,
    distribution,
    machine,
    mosquitto,
    raise_fd_limit,
    rate,
    run_clients,
    thread_rates,
    verdict,
)
from server.bench.probe import LagMeter, loop_lag_probe
from server.bench.wsclient import WsClient, close_all, connect_many
from server.bench.wsprobe import CONNECT_TIMEOUT_S

__all__ = ["WsProbes", "gc_pauses", "mqtt_delays", "run"]

TARGET_WS_P99_MS = 15.0
TARGET_MQTT_P99_MS = 25.0
FPS = 15.0
PERIODS = (3.0, 3.5, 4.0, 4.5)


def gc_pauses(pauses: list[list[float]]) -> dict[str, dict[str, float]]:
    """Per generation of the cyclic garbage collector: how many collections, their total and
    longest pause in ms (from the server's ``(generation, seconds)`` records)."""
    out: dict[str, dict[str, float]] = {}
    for gen in sorted({int(g) for g, _ in pauses}):
        ms = [1000.0 * s for g, s in pauses if int(g) == gen]
        out[f"gen{gen}"] = {
            "count": len(ms),
            "total_ms": round(sum(ms), 2),
            "max_ms": round(max(ms), 2),
        }
    return out


async def mqtt_delays(
    url: str, prefix: str, ready: asyncio.Event, recording: asyncio.Event, delays: list[float]
) -> None:
    """Run a subscriber to ``<prefix>/events`` in its own process (see
    :mod:`server.bench.mqttsub`) and record each ``start`` message's delay while
    ``recording`` is set; until cancelled."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server.bench.mqttsub",
        url,
        f"{prefix}/events",
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        if (await proc.stdout.readline()).strip() != b"ready":
            raise RuntimeError("the MQTT subscriber did not start")
        ready.set()
        while line := await proc.stdout.readline():
            if recording.is_set():
                delays.append(float(line))
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


class WsProbes:
    """The WebSocket probe process (:mod:`server.bench.wsprobe`), driven over its stdin."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self._proc = proc

    @classmethod
    async def start(cls, host: str, port: int) -> WsProbes:
        """Start the process, with no probe open yet."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "server.bench.wsprobe",
            host,
            str(port),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            # The answer to ``stop`` is one line with every delay recorded.
            limit=64 * 2**20,
        )
        return cls(proc)

    async def _ask(self, command: str) -> bytes:
        stdin, stdout = self._proc.stdin, self._proc.stdout
        assert stdin is not None
        assert stdout is not None
        stdin.write(f"{command}\n".encode())
        await stdin.drain()
        async with asyncio.timeout(CONNECT_TIMEOUT_S + 5.0):
            answer = await stdout.readline()
        if not answer:
            raise RuntimeError(f"the WebSocket probe process ended at {command!r}")
        return answer

    async def connect(self) -> None:
        """Open one more probe; returns once the server has it in its fan-out."""
        await self._ask("connect")

    async def record(self) -> None:
        """Record the probes' delays from now on."""
        await self._ask("record")

    async def stop(self) -> dict[str, list[list[float]]]:
        """Stop recording: each probe's ``motion`` and ``event_start`` delays in seconds, in
        the order the probes were opened. The process then exits."""
        delays: dict[str, list[list[float]]] = json.loads(await self._ask("stop"))
        return delays

    async def close(self) -> None:
        """End the process if it is still running."""
        with contextlib.suppress(ProcessLookupError):
            self._proc.kill()
        await self._proc.wait()


async def _connect_interleaved(
    ctx: BenchContext, server: ProbeServer, probes: WsProbes, *, clients: int, count: int
) -> tuple[list[WsClient], list[int]]:
    """Connect ``clients`` load clients in ``count`` batches, and one probe after each batch:
    the load clients, and each probe's 1-based position in the server's connection order."""
    # The fan-out keeps its clients in a dict in the order they registered, offers each
    # message in that order, and its flush pass writes to them in the order they were offered
    # (only a client whose socket is full is left to its own writer task): the order in which
    # the server sends to its clients is the order in which they connected.
    host, port = server.ws_url
    conns: list[WsClient] = []
    positions: list[int] = []
    for i in range(count):
        size = clients // count if i < count - 1 else clients - len(conns)
        batch = await connect_many(host, port, size)
        # The server's hello follows its adding the client to the fan-out: once every client
        # of the batch has it, the probe opened next comes after all of them.
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            await asyncio.gather(*(c.greeted for c in batch))
        conns += batch
        await probes.connect()
        positions.append(len(conns) + i + 1)
        ctx.progress(f"latency: {len(conns)} load clients and {i + 1} probes connected")
    return conns, positions


def _per_probe(delays: dict[str, list[list[float]]], positions: list[int]) -> list[dict[str, Any]]:
    return [
        {"position": pos, "motion_ms": distribution(motion), "event_start_ms": distribution(ev)}
        for pos, motion, ev in zip(positions, delays["motion"], delays["event_start"], strict=True)
    ]


async def _measure(
    ctx: BenchContext,
    server: ProbeServer,
    *,
    broker: str,
    prefix: str,
    clients: int,
    probe_count: int,
    window: float,
) -> dict[str, Any]:
    mqtt: list[float] = []
    ready, recording = asyncio.Event(), asyncio.Event()
    sub = asyncio.create_task(mqtt_delays(broker, prefix, ready, recording, mqtt), name="mqtt-sub")
    async with asyncio.timeout(30):
        await ready.wait()
    host, port = server.ws_url
    probes = await WsProbes.start(host, port)
    try:
        conns, positions = await _connect_interleaved(
            ctx, server, probes, clients=clients, count=probe_count
        )
        ctx.progress(f"latency: measuring for {window:g} s")
        result, probe_delays = await _record(server, conns, probes, recording, window)
    finally:
        await probes.close()
    mqtt_samples = list(mqtt)
    sub.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sub
    await close_all(conns)
    motion = [d for c in conns for d in c.log.motion_delays]
    events = [d for c in conns for d in c.log.event_delays]
    return {
        "ws_probe_motion_ms": distribution([d for p in probe_delays["motion"] for d in p]),
        "ws_probe_event_start_ms": distribution(
            [d for p in probe_delays["event_start"] for d in p]
        ),
        "ws_probes": _per_probe(probe_delays, positions),
        "ws_load_clients_motion_ms": distribution(motion),
        "ws_load_clients_event_start_ms": distribution(events),
        "mqtt_event_start_ms": distribution(mqtt_samples),
        **result,
        "clients_closed_by_server": sum(c.log.closed_code is not None for c in conns),
    }


async def _record(
    server: ProbeServer,
    conns: list[WsClient],
    probes: WsProbes,
    recording: asyncio.Event,
    window: float,
) -> tuple[dict[str, Any], dict[str, list[list[float]]]]:
    """Record every receiver's delays for ``window`` seconds: the server's and the load
    clients' figures over that window, and the probes' delays."""
    # The load clients' own event loop: a late wake-up here is a late timestamp there.
    client_lag = LagMeter()
    lag_task = asyncio.create_task(loop_lag_probe(client_lag), name="client-lag")
    await asyncio.sleep(1.0)
    stats0 = await asyncio.to_thread(server.stats)
    client_lag.take()
    await probes.record()
    recording.set()
    for c in conns:
        c.recording = True
    await asyncio.sleep(window)
    for c in conns:
        c.recording = False
    recording.clear()
    probe_delays = await probes.stop()
    lag_task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await lag_task
    stats1 = await asyncio.to_thread(server.stats)
    elapsed = stats1["uptime"] - stats0["uptime"]
    threads = thread_rates(stats0, stats1)
    ws_sent = (stats1["ws"]["sent"] - stats0["ws"]["sent"]) / elapsed
    loop_cpu = threads.get("MainThread", 0.0)
    result = {
        "server_loop_lag_ms": distribution(stats1["loop_lag"]),
        "client_loop_lag_ms": distribution(client_lag.take()),
        "server_gc": gc_pauses(stats1.get("gc", [])),
        "server_cpu_s_per_s": round(cpu_rate(stats0, stats1), 3),
        "thread_cpu_s_per_s": threads,
        # Time ready to run but without a CPU, per second: the machine's share of the lag.
        "thread_runqueue_wait_s_per_s": thread_rates(stats0, stats1, "runqueue_wait"),
        "ws_sent_per_s": round(ws_sent, 1),
        # The event loop's CPU per WebSocket message sent: a load-independent cost figure
        # (it includes the loop's other work: events, MQTT, storage hand-offs).
        "loop_cpu_us_per_ws_send": round(1e6 * loop_cpu / ws_sent, 1) if ws_sent else None,
        "analysed_fps": round(rate(stats0, stats1, "processed"), 1),
    }
    return result, probe_delays


def run(ctx: BenchContext) -> SuiteResult:
    """8 cameras at 15 fps, 200 WebSocket load clients, 10 WebSocket probes, one MQTT
    subscriber."""
    if ctx.quick:
        size, cams, clients, probes, window = (320, 180), 4, 20, 4, 4.0
    else:
        size, cams, clients, probes, window = (1920, 1080), 8, 200, 10, 60.0
    raise_fd_limit(4096)
    ctx.progress(f"latency: preparing {len(PERIODS)} {size[0]}x{size[1]} clips (cached)")
    clips = [clip(size[0], size[1], FPS, seed=20 + i, period=p) for i, p in enumerate(PERIODS)]
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    with (
        tempfile.TemporaryDirectory(prefix="motionhub-bench-") as tmp,
        RtspCamera({f"cam{i}": clips[i % len(clips)] for i in range(cams)}) as cam,
        mosquitto(Path(tmp)) as broker,
    ):
        cameras = [
            camera_config(f"cam{i}", url, fps=FPS, min_frames=1, off_delay=0.5)
            for i, url in enumerate(cam.urls.values())
        ]
        settings = {
            "cameras": cameras,
            "mqtt": {"url": broker, "topic_prefix": prefix, "discovery": {"enabled": False}},
        }
        with ProbeServer(settings, Path(tmp)) as server:
            ctx.progress(f"latency: waiting for {cams} cameras")
            server.wait_online(cams)
            result = run_clients(
                _measure(
                    ctx,
                    server,
                    broker=broker,
                    prefix=prefix,
                    clients=clients,
                    probe_count=probes,
                    window=window,
                )
            )
    ws_p99 = result["ws_probe_event_start_ms"].get("p99", float("inf"))
    motion_p99 = result["ws_probe_motion_ms"].get("p99", float("inf"))
    mqtt_p99 = result["mqtt_event_start_ms"].get("p99", float("inf"))
    data: dict[str, Any] = {
        "suite": "latency",
        "quick": ctx.quick,
        "machine": machine(),
        "load": {
            "cameras": cams,
            "size": list(size),
            "fps": FPS,
            "ws_clients": clients,
            "ws_probes": probes,
            "mqtt_subscribers": 1,
            "window_s": window,
        },
        **result,
        "targets": {"ws_p99_ms": TARGET_WS_P99_MS, "mqtt_p99_ms": TARGET_MQTT_P99_MS},
        "meets": {
            "ws": max(ws_p99, motion_p99) <= TARGET_WS_P99_MS,
            "mqtt": mqtt_p99 <= TARGET_MQTT_P99_MS,
        },
    }
    return SuiteResult("latency", data, _markdown(data))


def _row(name: str, d: dict[str, Any], target: str) -> str:
    if not d.get("count"):
        return f"| {name} | 0 | - | - | - | - | {target} |"
    return (
        f"| {name} | {d['count']} | {d['p50']:.2f} | {d['p90']:.2f} | {d['p99']:.2f} | "
        f"{d['max']:.1f} | {target} |"
    )


def _p99(d: dict[str, Any]) -> str:
    return f"{d['p99']:.1f}" if d.get("count") else "-"


def _markdown(data: dict[str, Any]) -> str:
    load = data["load"]
    ws_ok = verdict(data["meets"]["ws"])
    mqtt_ok = verdict(data["meets"]["mqtt"])
    ws_target = f"p99 <= {data['targets']['ws_p99_ms']:g} ({ws_ok})"
    mqtt_target = f"p99 <= {data['targets']['mqtt_p99_ms']:g} ({mqtt_ok})"
    lines = [
        f"## latency: frame decoded -> delivered ({load['cameras']} cameras "
        f"{load['size'][0]}x{load['size'][1]} at {load['fps']:g} fps, "
        f"{load['ws_clients']} WebSocket load clients and {load['ws_probes']} probes, "
        f"{load['window_s']:g} s)",
        "",
        "| path | messages | p50 ms | p90 ms | p99 ms | max ms | target |",
        "|---|---:|---:|---:|---:|---:|---|",
        _row("WebSocket `motion`, probes", data["ws_probe_motion_ms"], ws_target),
        _row("WebSocket `event_start`, probes", data["ws_probe_event_start_ms"], ws_target),
        _row("MQTT `events` start", data["mqtt_event_start_ms"], mqtt_target),
        _row("WebSocket `motion`, load clients", data["ws_load_clients_motion_ms"], "-"),
        _row("WebSocket `event_start`, load clients", data["ws_load_clients_event_start_ms"], "-"),
        _row("server event-loop lag", data["server_loop_lag_ms"], "-"),
        _row("load clients' event-loop lag", data["client_loop_lag_ms"], "-"),
        "",
        f"Server CPU {data['server_cpu_s_per_s']:.2f} s/s (event loop "
        f"{data['thread_cpu_s_per_s'].get('MainThread', 0.0):.2f}, camera readers "
        f"{data['thread_cpu_s_per_s'].get('camera readers', 0.0):.2f}), "
        f"{data['analysed_fps']:.1f} frames analysed/s of {load['cameras'] * load['fps']:g} "
        f"offered, {data['ws_sent_per_s']:.0f} WebSocket messages sent/s "
        f"(event loop {data['loop_cpu_us_per_ws_send']} µs of CPU per message sent, all its "
        f"work included). Load average at the end: {data['machine']['load_avg']}.",
        "",
        "The probes run in a process of their own, as a viewer's browser does; the load "
        "clients share one process that reads their sockets one after the other (their "
        "figure was this suite's WebSocket figure before the probes). p99 of each probe, by "
        "its place in the server's sending order (`motion` / `event_start`, ms): "
        + ", ".join(
            f"#{p['position']} {_p99(p['motion_ms'])} / {_p99(p['event_start_ms'])}"
            for p in data["ws_probes"]
        )
        + ".",
    ]
    waits = data.get("thread_runqueue_wait_s_per_s") or {}
    if waits:
        lines += [
            "",
            f"Waiting for a CPU while ready to run (run-queue delay, s/s): event loop "
            f"{waits.get('MainThread', 0.0):.3f}, camera readers "
            f"{waits.get('camera readers', 0.0):.3f}.",
        ]
    if data.get("server_gc"):
        gcs = ", ".join(
            f"{gen}: {g['count']} ({g['total_ms']:.1f} ms, longest {g['max_ms']:.1f} ms)"
            for gen, g in data["server_gc"].items()
        )
        lines += ["", f"Server garbage collections in the window: {gcs}."]
    return "\n".join(lines) + "\n"
