"""The ``memory`` bench suite: resident memory per 1080p camera, and over a soak.

**Per camera.** One server process starts with no camera. Cameras (1080p H.264 over RTSP at
15 fps) are added through the REST API, up to 1, 2, 4 and 8, and memory is read at each
count once its cameras are online and settled: RSS, split into anonymous memory (heap,
decoder buffers: the process's own) and file-backed pages (shared-library code and data
mapped from disk, which the first camera's first use of FFmpeg and OpenCV pages in), and
PSS and USS (the process's private pages) from ``smaps_rollup``. Two per-camera figures:
the issue's (RSS with 8 - RSS with none) / 8, which spreads the first camera's one-time cost
over eight, and the marginal cost, the least-squares slope of RSS over 1 to 8 cameras.

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
from server.bench.probe import proc_status_bytes

__all__ = ["run"]

TARGET_PER_CAMERA_MB = 25.0
TARGET_GROWTH = 0.05
FPS = 15.0
MB = 1024 * 1024


KEYS = ("rss", "anon", "file", "pss", "uss")


def memory(pid: int) -> dict[str, int]:
    """Resident memory of ``pid`` in bytes: ``rss``, its ``anon`` and ``file`` parts
    (``RssAnon``, ``RssFile`` + ``RssShmem``), and ``pss`` and ``uss`` (private pages)."""
    status = proc_status_bytes(pid)
    rollup = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, _, value = line.partition(":")
        rollup[key] = int(value.split()[0]) * 1024
    return {
        "rss": status["VmRSS"],
        "anon": status["RssAnon"],
        "file": status["RssFile"] + status.get("RssShmem", 0),
        "pss": rollup["Pss"],
        "uss": rollup["Private_Clean"] + rollup["Private_Dirty"],
    }


def _settled(server: ProbeServer, settle: float, samples: int = 5) -> dict[str, int]:
    """Median of each measure over a few samples, ``settle / 4`` apart, after ``settle``
    seconds."""
    time.sleep(settle)
    values = []
    for _ in range(samples):
        values.append(memory(server.pid))
        time.sleep(settle / 4)
    return {k: int(statistics.median(v[k] for v in values)) for k in KEYS}


def _per_camera(
    ctx: BenchContext, server: ProbeServer, urls: list[str], counts: list[int], settle: float
) -> dict[str, Any]:
    configs = [camera_config(f"cam{i}", u, fps=FPS) for i, u in enumerate(urls)]
    by_count: dict[int, dict[str, int]] = {}
    added = 0
    for n in counts:
        for cfg in configs[added:n]:
            server.add_camera(cfg)
        added = n
        if n:
            server.wait_online(n)
        by_count[n] = m = _settled(server, settle)
        ctx.progress(
            f"memory: {n} camera(s): RSS {m['rss'] / MB:.1f} MB "
            f"(anon {m['anon'] / MB:.1f}, file {m['file'] / MB:.1f})"
        )
    n, none, one, full = counts[-1], by_count[0], by_count[1], by_count[counts[-1]]
    per = (full["rss"] - none["rss"]) / n / MB
    later = [c for c in counts if c >= 1]
    return {
        "cameras": n,
        "by_count": {
            str(c): {k: round(v / MB, 1) for k, v in m.items()} for c, m in by_count.items()
        },
        "rss_none_mb": round(none["rss"] / MB, 1),
        "rss_one_mb": round(one["rss"] / MB, 1),
        "rss_all_mb": round(full["rss"] / MB, 1),
        "per_camera_mb": round(per, 2),
        "first_camera_mb": {k: round((one[k] - none[k]) / MB, 2) for k in KEYS},
        "marginal_camera_mb": {
            k: round(
                statistics.linear_regression(later, [by_count[c][k] / MB for c in later]).slope,
                2,
            )
            for k in KEYS
        },
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
        size, counts, settle, duration = (320, 180), [0, 1, 2], 0.4, ctx.duration or 6.0
        cycle, outage = max(2.0, duration / 3), 0.5
    else:
        size, counts, settle, duration = (1920, 1080), [0, 1, 2, 4, 8], 8.0, ctx.duration or 600.0
        cycle = 30.0 if duration >= 120 else max(5.0, duration / 4)
        outage = 2.0
    cams = counts[-1]
    ctx.progress(f"memory: preparing the {size[0]}x{size[1]} clip (cached)")
    path = clip(size[0], size[1], FPS, seed=60, period=4.0)
    with (
        tempfile.TemporaryDirectory(prefix="motionhub-bench-") as tmp,
        RtspCamera({f"cam{i}": path for i in range(cams)}) as cam,
        ProbeServer({"cameras": []}, Path(tmp)) as server,
    ):
        per_camera = _per_camera(ctx, server, list(cam.urls.values()), counts, settle)
        ctx.progress(f"memory: soak for {duration:g} s, cameras drop every {cycle:g} s")
        soak = _soak(ctx, server, cam, duration=duration, cycle=cycle, outage=outage)
        soak["end_mb"] = {k: round(v / MB, 1) for k, v in memory(server.pid).items()}
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
    first, marginal = pc["first_camera_mb"], pc["marginal_camera_mb"]
    pc_ok = verdict(pc["meets"])
    soak_ok = verdict(soak["meets"])
    lines = [
        f"## memory: RSS per {st['width']}x{st['height']} camera, and a "
        f"{soak['duration_s']:g} s soak with drops every {soak['cycle_s']:g} s",
        "",
        "| cameras | RSS | anonymous | file-backed | PSS | USS |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for count, m in pc["by_count"].items():
        lines.append(
            f"| {count} | {m['rss']:.1f} | {m['anon']:.1f} | {m['file']:.1f} | "
            f"{m['pss']:.1f} | {m['uss']:.1f} |"
        )
    lines += [
        "",
        "MB. Anonymous: the process's own memory (heap, decoder buffers); file-backed: pages "
        "of shared libraries and other files (code pages are shared with any other process "
        "using the same libraries); USS: pages private to this process.",
        "",
        "| measure | RSS | anonymous | file-backed | target |",
        "|---|---:|---:|---:|---|",
        f"| per camera, ({pc['cameras']} - none) / {pc['cameras']} | "
        f"{pc['per_camera_mb']:.1f} MB | | | <= {pc['target_mb']:g} MB ({pc_ok}) |",
        f"| first camera (1 - none) | {first['rss']:.1f} MB | {first['anon']:.1f} MB | "
        f"{first['file']:.1f} MB | |",
        f"| each further camera (slope over 1-{pc['cameras']}) | {marginal['rss']:.1f} MB | "
        f"{marginal['anon']:.1f} MB | {marginal['file']:.1f} MB | |",
        f"| soak: RSS 2nd cycle -> last cycle | {soak['rss_second_cycle_mb']:.1f} -> "
        f"{soak['rss_last_cycle_mb']:.1f} MB ({soak['growth'] * 100:+.1f}%) | | | "
        f"within 5% ({soak_ok}) |",
        f"| soak: peak over 2nd cycle | {(soak['peak_over_base'] or 0) * 100:+.1f}% | | | |",
        f"| soak: drops / reconnects seen | {soak['drops']} / {soak['reconnects']} | | | |",
        "",
        f"Load average at the end: {data['machine']['load_avg']}.",
    ]
    return "\n".join(lines) + "\n"
