"""The ``scale`` bench suite: throughput on 2 cores against 1 core, and where it stops.

One server process decodes and analyses eight 1080p RTSP streams served faster than it can
take them (as in the ``decode`` suite), so its frames/s is its limit. The bench pins every
thread of that same process to one core, then to both (``sched_setaffinity`` on each
thread, what ``taskset -a -p`` does), alternating over several rounds, so both sides share
the same connections, warm caches and background load. Per phase it records decoded and
analysed frames/s and CPU seconds per kind of thread (event loop, camera readers), and on
two cores it takes py-spy profiles (GIL holders, and running threads). From those come
per-frame costs, and the ceilings that would bind on a bigger host (see bench/RESULTS.md).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from clients.sim import RtspCamera
from server.bench import BenchContext, SuiteResult
from server.bench.decode import DETECT_FPS
from server.bench.harness import (
    ProbeServer,
    camera_config,
    clip,
    cpu_rate,
    cpu_seconds,
    machine,
    rate,
    thread_cpu_rates,
    verdict,
)
from server.bench.profile import profile

__all__ = ["pin_process", "run"]

TARGET = 1.8


def pin_process(pid: int, cpus: set[int]) -> None:
    """Pin every thread of ``pid`` to ``cpus`` (threads started later inherit it)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError, FileNotFoundError):
            os.sched_setaffinity(int(task.name), cpus)


def _phase(
    server: ProbeServer, sim_pid: int | None, cpus: set[int], settle: float, window: float
) -> dict[str, Any]:
    pin_process(server.pid, cpus)
    time.sleep(settle)
    before, sim0 = server.stats(), cpu_seconds(sim_pid)
    time.sleep(window)
    after, sim1 = server.stats(), cpu_seconds(sim_pid)
    elapsed = after["uptime"] - before["uptime"]
    threads = thread_cpu_rates(before, after)
    return {
        "cpus": sorted(cpus),
        "decoded_fps": round(rate(before, after, "frames"), 1),
        "analysed_fps": round(rate(before, after, "processed"), 1),
        "server_cpu_s_per_s": round(cpu_rate(before, after), 3),
        "thread_cpu_s_per_s": dict(sorted(threads.items(), key=lambda kv: -kv[1])),
        "simulator_cpu_s_per_s": round((sim1 - sim0) / elapsed, 3),
    }


def _costs(phases: list[dict[str, Any]], prof: dict[str, Any]) -> dict[str, Any]:
    """Per-frame costs on two cores and the ceilings they imply for one process."""
    two = [p for p in phases if len(p["cpus"]) == 2]
    fps = sum(p["decoded_fps"] for p in two) / len(two)
    analysed = sum(p["analysed_fps"] for p in two) / len(two)
    loop = sum(p["thread_cpu_s_per_s"].get("MainThread", 0.0) for p in two) / len(two)
    readers = sum(p["thread_cpu_s_per_s"].get("camera readers", 0.0) for p in two) / len(two)
    out: dict[str, Any] = {
        "decoded_fps": round(fps, 1),
        "reader_ms_per_decoded_frame": round(readers / fps * 1000, 3) if fps else None,
        "loop_ms_per_analysed_frame": round(loop / analysed * 1000, 3) if analysed else None,
        "event_loop_ceiling_fps": round(analysed / loop) if loop else None,
    }
    if prof.get("available"):
        gil_share = prof["gil"]["share_of_time"]
        out["gil_held_share"] = gil_share
        if gil_share:
            out["gil_ms_per_frame"] = round(gil_share / fps * 1000, 3)
            out["gil_ceiling_fps"] = round(fps / gil_share)
    return out


def run(ctx: BenchContext) -> SuiteResult:
    """Alternate 1 and 2 cores on one loaded server; profile it on 2 cores."""
    if ctx.quick:
        size, cams, rounds, settle, window, prof_s = (320, 180), 2, 1, 1.0, 2.0, 1.0
    else:
        size, cams, rounds, settle, window, prof_s = (1920, 1080), 8, 3, 3.0, 10.0, 10.0
    cpus_all = sorted(os.sched_getaffinity(0))
    one, both = {cpus_all[0]}, set(cpus_all[:2])
    ctx.progress(f"scale: preparing the {size[0]}x{size[1]} clip (cached)")
    path = clip(size[0], size[1], 120.0)
    phases: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="motionhub-bench-") as tmp,
        RtspCamera({f"s{i}": path for i in range(cams)}) as cam,
    ):
        cameras = [
            camera_config(f"c{i}", url, fps=DETECT_FPS) for i, url in enumerate(cam.urls.values())
        ]
        with ProbeServer({"cameras": cameras}, Path(tmp)) as server:
            server.wait_online(cams)
            for r in range(rounds):
                for cpus in (one, both):
                    phase = _phase(server, cam.pid, cpus, settle, window)
                    phases.append(phase)
                    ctx.progress(
                        f"scale: round {r + 1}/{rounds}, {len(cpus)} core(s): "
                        f"{phase['decoded_fps']:.1f} fps"
                    )
            pin_process(server.pid, both)
            ctx.progress(f"scale: profiling on 2 cores ({2 * prof_s:g} s)")
            prof = profile(server.pid, prof_s)
    fps1 = [p["decoded_fps"] for p in phases if len(p["cpus"]) == 1]
    fps2 = [p["decoded_fps"] for p in phases if len(p["cpus"]) == 2]
    ratio = (sum(fps2) / len(fps2)) / (sum(fps1) / len(fps1)) if sum(fps1) else 0.0
    cpu1 = sum(p["server_cpu_s_per_s"] for p in phases if len(p["cpus"]) == 1)
    cpu2 = sum(p["server_cpu_s_per_s"] for p in phases if len(p["cpus"]) == 2)
    # Frames per CPU-second on 2 cores over that on 1: 1.0 means a second core costs nothing
    # extra (no lock or GIL contention), whatever share of the cores the machine granted.
    efficiency = (sum(fps2) / cpu2) / (sum(fps1) / cpu1) if cpu1 and cpu2 and sum(fps1) else 0.0
    data: dict[str, Any] = {
        "suite": "scale",
        "quick": ctx.quick,
        "machine": machine(),
        "load": {"cameras": cams, "size": list(size), "served_fps": 120, "window_s": window},
        "phases": phases,
        "fps_1_core": round(sum(fps1) / len(fps1), 1),
        "fps_2_cores": round(sum(fps2) / len(fps2), 1),
        "ratio": round(ratio, 3),
        "cpu_granted_ratio": round(cpu2 / cpu1, 3) if cpu1 else 0.0,
        "frames_per_cpu_second_ratio": round(efficiency, 3),
        "target": TARGET,
        "meets": ratio >= TARGET,
        "costs": _costs(phases, prof),
        "profile": prof,
    }
    return SuiteResult("scale", data, _markdown(data))


def _markdown(data: dict[str, Any]) -> str:
    load, costs = data["load"], data["costs"]
    ok = verdict(data["meets"])
    lines = [
        f"## scale: {load['cameras']} cameras {load['size'][0]}x{load['size'][1]}, "
        "2 cores vs 1 core (one process, re-pinned between rounds)",
        "",
        "| cores | decoded fps | analysed fps | server CPU s/s | event loop s/s | "
        "readers s/s | simulator s/s |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in data["phases"]:
        t = p["thread_cpu_s_per_s"]
        lines.append(
            f"| {len(p['cpus'])} | {p['decoded_fps']:.1f} | {p['analysed_fps']:.1f} | "
            f"{p['server_cpu_s_per_s']:.2f} | {t.get('MainThread', 0.0):.2f} | "
            f"{t.get('camera readers', 0.0):.2f} | {p['simulator_cpu_s_per_s']:.2f} |"
        )
    lines += [
        "",
        f"2 cores / 1 core: {data['fps_2_cores']:.1f} / {data['fps_1_core']:.1f} = "
        f"**{data['ratio']:.2f}x** (target >= {data['target']}x, {ok}). CPU the server "
        f"got, 2 cores / 1 core: {data['cpu_granted_ratio']:.2f}x; frames per CPU-second, "
        f"2 cores / 1 core: {data['frames_per_cpu_second_ratio']:.2f} (1.0 = no cost to "
        "using the second core).",
        "",
        "Per-frame costs on 2 cores: "
        f"reader thread {costs.get('reader_ms_per_decoded_frame')} ms/decoded frame, "
        f"event loop {costs.get('loop_ms_per_analysed_frame')} ms/analysed frame "
        f"(event-loop ceiling ~{costs.get('event_loop_ceiling_fps')} fps), "
        f"GIL held {costs.get('gil_held_share')} of the time "
        f"({costs.get('gil_ms_per_frame')} ms/frame, GIL ceiling ~{costs.get('gil_ceiling_fps')} "
        "fps).",
    ]
    prof = data["profile"]
    if prof.get("available"):
        lines += ["", "GIL holders by thread kind (share of wall time):", ""]
        lines += [f"- {k}: {v}" for k, v in prof["gil"]["by_thread_kind"].items()]
        lines += ["", "Top GIL-holding frames (self):", ""]
        lines += [f"- `{f}`: {v}" for f, v in prof["gil"]["top_self"][:8]]
    else:
        lines += ["", f"No profile: {prof.get('note')}."]
    lines += ["", f"Load average at the end: {data['machine']['load_avg']}."]
    return "\n".join(lines) + "\n"
