"""The ``latency`` bench suite: from a frame leaving the decoder to its message arriving.

Eight simulated RTSP cameras at 15 frames/s (1080p; each scene alternates moving and
still phases, with different periods so events do not all coincide), 200 WebSocket
clients connected and reading, and one MQTT subscriber on a private Mosquitto.

The server stamps each frame with ``time.time()`` as it comes out of the decoder; a
``motion`` message carries that time as ``ts``, and an ``event_start`` the time of the frame
that started the event (``events.min_frames`` is 1 here, so that is the frame whose
analysis published it). A receiver's delay is its clock at arrival minus ``ts``; sender
and receivers share this machine's clock.
"""

from __future__ import annotations

import asyncio
import contextlib
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

__all__ = ["gc_pauses", "mqtt_delays", "run"]

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


async def _measure(
    ctx: BenchContext,
    server: ProbeServer,
    *,
    broker: str,
    prefix: str,
    clients: int,
    window: float,
) -> dict[str, Any]:
    mqtt: list[float] = []
    ready, recording = asyncio.Event(), asyncio.Event()
    sub = asyncio.create_task(mqtt_delays(broker, prefix, ready, recording, mqtt), name="mqtt-sub")
    async with asyncio.timeout(30):
        await ready.wait()
    host, port = server.ws_url
    conns: list[WsClient] = await connect_many(host, port, clients, progress=ctx.progress)
    ctx.progress(f"latency: {clients} clients connected; measuring for {window:g} s")
    # The load clients' own event loop: a late wake-up here is a late timestamp there.
    client_lag = LagMeter()
    lag_task = asyncio.create_task(loop_lag_probe(client_lag), name="client-lag")
    await asyncio.sleep(1.0)
    stats0 = await asyncio.to_thread(server.stats)
    client_lag.take()
    recording.set()
    for c in conns:
        c.recording = True
    await asyncio.sleep(window)
    for c in conns:
        c.recording = False
    recording.clear()
    lag_task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await lag_task
    mqtt_samples = list(mqtt)
    stats1 = await asyncio.to_thread(server.stats)
    sub.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sub
    await close_all(conns)
    motion = [d for c in conns for d in c.log.motion_delays]
    events = [d for c in conns for d in c.log.event_delays]
    elapsed = stats1["uptime"] - stats0["uptime"]
    threads = thread_rates(stats0, stats1)
    ws_sent = (stats1["ws"]["sent"] - stats0["ws"]["sent"]) / elapsed
    loop_cpu = threads.get("MainThread", 0.0)
    return {
        "ws_motion_ms": distribution(motion),
        "ws_event_start_ms": distribution(events),
        "mqtt_event_start_ms": distribution(mqtt_samples),
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
        "clients_closed_by_server": sum(c.log.closed_code is not None for c in conns),
    }


def run(ctx: BenchContext) -> SuiteResult:
    """8 cameras at 15 fps, 200 WebSocket clients, one MQTT subscriber."""
    if ctx.quick:
        size, cams, clients, window = (320, 180), 4, 20, 4.0
    else:
        size, cams, clients, window = (1920, 1080), 8, 200, 60.0
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
                _measure(ctx, server, broker=broker, prefix=prefix, clients=clients, window=window)
            )
    ws_p99 = result["ws_event_start_ms"].get("p99", float("inf"))
    motion_p99 = result["ws_motion_ms"].get("p99", float("inf"))
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


def _markdown(data: dict[str, Any]) -> str:
    load = data["load"]
    ws_ok = verdict(data["meets"]["ws"])
    mqtt_ok = verdict(data["meets"]["mqtt"])
    ws_target = f"p99 <= {data['targets']['ws_p99_ms']:g} ({ws_ok})"
    mqtt_target = f"p99 <= {data['targets']['mqtt_p99_ms']:g} ({mqtt_ok})"
    lines = [
        f"## latency: frame decoded -> delivered ({load['cameras']} cameras "
        f"{load['size'][0]}x{load['size'][1]} at {load['fps']:g} fps, "
        f"{load['ws_clients']} WebSocket clients, {load['window_s']:g} s)",
        "",
        "| path | messages | p50 ms | p90 ms | p99 ms | max ms | target |",
        "|---|---:|---:|---:|---:|---:|---|",
        _row("WebSocket `motion`", data["ws_motion_ms"], ws_target),
        _row("WebSocket `event_start`", data["ws_event_start_ms"], ws_target),
        _row("MQTT `events` start", data["mqtt_event_start_ms"], mqtt_target),
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
