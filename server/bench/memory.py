"""The ``memory`` bench suite: resident memory per 1080p camera, and over a soak.

**Per camera.** One server process starts with no camera; its RSS is the baseline. Then
cameras (1080p H.264 over RTSP at 15 fps) are added through the REST API, first one, then
up to eight, and RSS is read again once each batch is online and settled. The figure is
(RSS with 8 - RSS with none) / 8; the first camera alone (which also pays for loading the
decoder) and the marginal cost of the next seven are reported too.

**Soak.** The same process keeps its eight cameras for ``--duration`` seconds (10
minutes by default); every 30 s the RTSP server goes away for 2 s, so every camera drops
and reconnects. RSS is sampled every second. "Flat" compares the median of the last
cycle with the median of the second (the first includes the first reconnect's one-time
allocations).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from clients.sim import RtspCamera
from server.bench import BenchContext, SuiteResult
from server.bench.harness import ProbeServer, camera_config, clip, machine, verdict

__all__ = ["run"]

TARGET_PER_CAMERA_MB = 25.0
TARGET_GROWTH = 0.05
FPS = 15.0
MB = 1024 * 1024


def _settled_rss(server: ProbeServer, settle: float, samples: int = 5) -> int:
    """Median RSS over a few samples, ``settle / 4`` apart, after ``settle`` seconds."""
    time.sleep(settle)
    values = []
    for _ in range(samples):
        values.append(server.rss())
        time.sleep(settle / 4)
    return int(statistics.median(values))


def _per_camera(
    ctx: BenchContext, server: ProbeServer, urls: list[str], settle: float
) -> dict[str, Any]:
    rss0 = _settled_rss(server, settle)
    ctx.progress(f"memory: no camera: {rss0 / MB:.1f} MB")
    configs = [camera_config(f"cam{i}", u, fps=FPS) for i, u in enumerate(urls)]
    server.add_camera(configs[0])
    server.wait_online(1)
    rss1 = _settled_rss(server, settle)
    ctx.progress(f"memory: 1 camera: {rss1 / MB:.1f} MB")
    for cfg in configs[1:]:
        server.add_camera(cfg)
    server.wait_online(len(configs))
    rss_n = _settled_rss(server, settle)
    n = len(configs)
    ctx.progress(f"memory: {n} cameras: {rss_n / MB:.1f} MB")
    per = (rss_n - rss0) / n / MB
    return {
        "cameras": n,
        "rss_none_mb": round(rss0 / MB, 1),
        "rss_one_mb": round(rss1 / MB, 1),
        "rss_all_mb": round(rss_n / MB, 1),
        "per_camera_mb": round(per, 2),
        "first_camera_mb": round((rss1 - rss0) / MB, 2),
        "marginal_camera_mb": round((rss_n - rss1) / max(1, n - 1) / MB, 2),
        "target_mb": TARGET_PER_CAMERA_MB,
        "meets": per <= TARGET_PER_CAMERA_MB,
    }


def _soak(
    ctx: BenchContext,
    server: ProbeServer,
    cam: RtspCamera,
    *,
    duration: float,
    cycle: float,
    outage: float,
) -> dict[str, Any]:
    samples: list[tuple[float, int]] = []
    start = time.monotonic()
    next_drop = start + cycle
    drops = 0
    while (now := time.monotonic()) < start + duration:
        samples.append((now - start, server.rss()))
        if now >= next_drop:
            cam.stop()
            time.sleep(outage)
            cam.start()
            drops += 1
            next_drop += cycle
            ctx.progress(
                f"memory: soak {now - start:.0f}/{duration:.0f} s, drop {drops}, "
                f"RSS {samples[-1][1] / MB:.1f} MB"
            )
        time.sleep(max(0.0, min(1.0, start + duration - time.monotonic())))
    stats = server.stats()
    reconnects = sum(c["reconnects"] for c in stats["cameras"].values())

    def median_between(lo: float, hi: float) -> float:
        vals = [r for t, r in samples if lo <= t < hi]
        return statistics.median(vals) if vals else float("nan")

    base = median_between(cycle, 2 * cycle)
    end = median_between(duration - cycle, duration + 1)
    later = [r for t, r in samples if t >= cycle]
    growth = end / base - 1.0
    return {
        "duration_s": round(duration, 1),
        "cycle_s": cycle,
        "drops": drops,
        "reconnects": reconnects,
        "rss_second_cycle_mb": round(base / MB, 1),
        "rss_last_cycle_mb": round(end / MB, 1),
        "rss_max_mb": round(max(later) / MB, 1) if later else None,
        "growth": round(growth, 4),
        "peak_over_base": round(max(later) / base - 1.0, 4) if later else None,
        "target_growth": TARGET_GROWTH,
        "meets": abs(growth) <= TARGET_GROWTH,
        "samples_mb": [
            [round(t, 1), round(r / MB, 1)] for t, r in samples[:: max(1, len(samples) // 120)]
        ],
    }


def run(ctx: BenchContext) -> SuiteResult:
    """RSS per camera, then the drop-and-reconnect soak."""
    if ctx.quick:
        size, cams, settle, duration = (320, 180), 2, 0.4, ctx.duration or 6.0
        cycle, outage = max(2.0, duration / 3), 0.5
    else:
        size, cams, settle, duration = (1920, 1080), 8, 8.0, ctx.duration or 600.0
        cycle = 30.0 if duration >= 120 else max(5.0, duration / 4)
        outage = 2.0
    ctx.progress(f"memory: preparing the {size[0]}x{size[1]} clip (cached)")
    path = clip(size[0], size[1], FPS, seed=60, period=4.0)
    with (
        tempfile.TemporaryDirectory(prefix="motionhub-bench-") as tmp,
        RtspCamera({f"cam{i}": path for i in range(cams)}) as cam,
        ProbeServer({"cameras": []}, Path(tmp)) as server,
    ):
        per_camera = _per_camera(ctx, server, list(cam.urls.values()), settle)
        ctx.progress(f"memory: soak for {duration:g} s, cameras drop every {cycle:g} s")
        soak = _soak(ctx, server, cam, duration=duration, cycle=cycle, outage=outage)
    data: dict[str, Any] = {
        "suite": "memory",
        "quick": ctx.quick,
        "machine": machine(),
        "stream": {"width": size[0], "height": size[1], "fps": FPS},
        "per_camera": per_camera,
        "soak": soak,
    }
    return SuiteResult("memory", data, _markdown(data))


def _markdown(data: dict[str, Any]) -> str:
    pc, soak, st = data["per_camera"], data["soak"], data["stream"]
    pc_ok = verdict(pc["meets"])
    soak_ok = verdict(soak["meets"])
    lines = [
        f"## memory: RSS per {st['width']}x{st['height']} camera, and a "
        f"{soak['duration_s']:g} s soak with drops every {soak['cycle_s']:g} s",
        "",
        "| measure | value | target |",
        "|---|---:|---|",
        f"| RSS, no camera | {pc['rss_none_mb']:.1f} MB | |",
        f"| RSS, 1 camera | {pc['rss_one_mb']:.1f} MB | |",
        f"| RSS, {pc['cameras']} cameras | {pc['rss_all_mb']:.1f} MB | |",
        f"| per camera ({pc['cameras']} cameras) | {pc['per_camera_mb']:.1f} MB | "
        f"<= {pc['target_mb']:g} MB ({pc_ok}) |",
        f"| first camera / each further camera | {pc['first_camera_mb']:.1f} / "
        f"{pc['marginal_camera_mb']:.1f} MB | |",
        f"| soak: RSS 2nd cycle -> last cycle | {soak['rss_second_cycle_mb']:.1f} -> "
        f"{soak['rss_last_cycle_mb']:.1f} MB ({soak['growth'] * 100:+.1f}%) | "
        f"within 5% ({soak_ok}) |",
        f"| soak: peak over 2nd cycle | {(soak['peak_over_base'] or 0) * 100:+.1f}% | |",
        f"| soak: drops / reconnects seen | {soak['drops']} / {soak['reconnects']} | |",
        "",
        f"Load average at the end: {data['machine']['load_avg']}.",
    ]
    return "\n".join(lines) + "\n"
