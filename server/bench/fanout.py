"""The ``fanout`` bench suite: 2,000 WebSocket clients on one server process.

Two simulated cameras produce an event every few seconds each (``events.min_frames`` 1,
so an ``event_start``'s ``ts`` is the decode time of the frame that published it). The
bench measures, on the same server and connections:

1. **baseline**: no clients; the pipeline's analysed frames/s and event-loop lag;
2. **all reading**: every client reads; each event must reach every client, and the
   delay from frame decoded to ``event_start`` received is recorded per client;
3. **10% stalled**: a tenth of the clients stop reading (their sockets fill up and the
   server closes them once they are ``slow_client_timeout`` behind); the readers'
   delays, completeness, and the pipeline's frames/s and loop lag against step 1.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
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
    raise_fd_limit,
    rate,
    run_clients,
    verdict,
)
from server.bench.wsclient import WsClient, close_all, connect_many

__all__ = ["run"]

TARGET_P99_MS = 100.0
STALL_SHARE = 0.10
FPS = 10.0
_GRACE = 2.0
"""Seconds after a window's end for its last events to arrive (half that in quick mode)."""


async def _window(
    server: ProbeServer, readers: list[WsClient], seconds: float, grace: float
) -> tuple[dict[str, Any], dict[str, Any], tuple[float, float]]:
    """Run ``seconds`` with ``readers`` connected, then wait ``grace`` for the last events
    to arrive; returns the server's stats around the window and its start and end."""
    before = await asyncio.to_thread(server.stats)
    start = time.time()
    await asyncio.sleep(seconds)
    end = time.time()
    after = await asyncio.to_thread(server.stats)
    await asyncio.sleep(grace)
    return before, after, (start, end)


def _phase(
    name: str,
    before: dict[str, Any],
    after: dict[str, Any],
    readers: list[WsClient],
    window: tuple[float, float],
) -> dict[str, Any]:
    """The phase's figures over the events whose frame was captured inside ``window``.

    Events are chosen by their own capture time, not by when they arrived: one that starts
    late in the grace period may still be on its way to some clients when it ends, and
    one captured just before the window may arrive inside it.
    """
    start, end = window
    events = {eid for c in readers for eid, (ts, _) in c.log.starts.items() if start <= ts < end}
    delays = [
        arrival - ts
        for c in readers
        for eid, (ts, arrival) in c.log.starts.items()
        if eid in events
    ]
    missing = sum(len(events - c.log.starts.keys()) for c in readers)
    return {
        "phase": name,
        "clients_reading": len(readers),
        "events": len(events),
        "deliveries": len(delays),
        "missing_deliveries": missing,
        "all_received": missing == 0,
        "event_start_ms": distribution(delays),
        "analysed_fps": round(rate(before, after, "processed"), 2),
        "loop_lag_ms": distribution(after["loop_lag"]),
        "server_cpu_s_per_s": round(cpu_rate(before, after), 3),
        "ws_clients_at_end": after["ws"]["clients"],
        "closed_slow": after["ws"]["closed_slow"],
    }


async def _measure(
    ctx: BenchContext, server: ProbeServer, clients: int, window: float
) -> list[dict[str, Any]]:
    grace = _GRACE / 2 if ctx.quick else _GRACE
    ctx.progress(f"fanout: baseline without clients ({window:g} s)")
    before, after, span = await _window(server, [], window, 0.0)
    phases = [_phase("no clients", before, after, [], span)]
    host, port = server.ws_url
    started = time.monotonic()
    conns = await connect_many(host, port, clients, record_motion=False, progress=ctx.progress)
    ctx.progress(f"fanout: {clients} clients connected in {time.monotonic() - started:.1f} s")
    try:
        await asyncio.sleep(1.0)
        ctx.progress(f"fanout: all reading ({window:g} s)")
        before, after, span = await _window(server, conns, window, grace)
        phases.append(_phase("all reading", before, after, conns, span))
        stalled = max(1, int(len(conns) * STALL_SHARE))
        for c in conns[:stalled]:
            c.stall()
        readers = conns[stalled:]
        ctx.progress(f"fanout: {stalled} clients stalled, {len(readers)} reading ({window:g} s)")
        before, after, span = await _window(server, readers, window, grace)
        phase = _phase(f"{int(STALL_SHARE * 100)}% stalled", before, after, readers, span)
        phase["clients_stalled"] = stalled
        phases.append(phase)
    finally:
        await close_all(conns)
    return phases


def run(ctx: BenchContext) -> SuiteResult:
    """2,000 clients (100 in quick mode), all reading, then 10% stalled."""
    if ctx.quick:
        size, clients, window = (320, 180), 100, 1.5
    else:
        size, clients, window = (640, 360), 2000, 30.0
    limit = raise_fd_limit(clients * 2 + 1024)
    ctx.progress(f"fanout: preparing the {size[0]}x{size[1]} clips (cached)")
    clips = [clip(size[0], size[1], FPS, seed=40 + i, period=p) for i, p in enumerate((3.0, 3.5))]
    with (
        tempfile.TemporaryDirectory(prefix="motionhub-bench-") as tmp,
        RtspCamera({f"cam{i}": c for i, c in enumerate(clips)}) as cam,
    ):
        cameras = [
            camera_config(f"cam{i}", url, fps=FPS, min_frames=1, off_delay=0.3)
            for i, url in enumerate(cam.urls.values())
        ]
        with ProbeServer({"cameras": cameras}, Path(tmp)) as server:
            server.wait_online(len(cameras))
            phases = run_clients(_measure(ctx, server, clients, window))
    base = phases[0]
    loaded = phases[1:]
    data: dict[str, Any] = {
        "suite": "fanout",
        "quick": ctx.quick,
        "machine": machine(),
        "load": {
            "cameras": len(clips),
            "size": list(size),
            "fps": FPS,
            "clients": clients,
            "window_s": window,
            "fd_limit": limit,
        },
        "phases": phases,
        "target_p99_ms": TARGET_P99_MS,
        "pipeline_fps_ratio": [
            round(p["analysed_fps"] / base["analysed_fps"], 3) if base["analysed_fps"] else 0.0
            for p in loaded
        ],
        "meets": all(
            p["all_received"] and p["event_start_ms"].get("p99", float("inf")) <= TARGET_P99_MS
            for p in loaded
        ),
    }
    return SuiteResult("fanout", data, _markdown(data))


def _markdown(data: dict[str, Any]) -> str:
    load = data["load"]
    lines = [
        f"## fanout: {load['clients']} WebSocket clients on one server "
        f"({load['cameras']} cameras {load['size'][0]}x{load['size'][1]} at {load['fps']:g} fps, "
        f"{load['window_s']:g} s per phase)",
        "",
        "| phase | reading | events | all received | event_start p50 / p90 / p99 ms | "
        "analysed fps | loop lag p99 ms | server CPU s/s |",
        "|---|---:|---:|---|---|---:|---:|---:|",
    ]
    for p in data["phases"]:
        d = p["event_start_ms"]
        dist = f"{d['p50']:.1f} / {d['p90']:.1f} / {d['p99']:.1f}" if d.get("count") else "-"
        received = "-" if not p["clients_reading"] else ("yes" if p["all_received"] else "**no**")
        lag = p["loop_lag_ms"].get("p99", 0.0)
        lines.append(
            f"| {p['phase']} | {p['clients_reading']} | {p['events']} | {received} | {dist} | "
            f"{p['analysed_fps']:.1f} | {lag:.1f} | {p['server_cpu_s_per_s']:.2f} |"
        )
    ok = verdict(data["meets"])
    lines += [
        "",
        f"Target: every reading client gets every event, p99 <= {data['target_p99_ms']:g} ms "
        f"({ok}). Pipeline fps vs no clients: {data['pipeline_fps_ratio']}. "
        f"Load average at the end: {data['machine']['load_avg']}.",
    ]
    return "\n".join(lines) + "\n"
