"""The ``scale`` bench suite: throughput on 2 cores against 1 core, and where it stops.

One server process decodes and analyses eight 1080p RTSP streams served faster than it can
take them (as in the ``decode`` suite), so its frames/s is its limit. The bench pins every
thread to one core, then to both (``sched_setaffinity`` on each thread, what
``taskset -a -p`` does), alternating over several rounds, so both sides share the same
connections, warm caches and background load. It does so two ways:

* **workload** (the figure): the server *and* the RTSP simulator feeding it are pinned
  together, to exactly one core, then exactly two. The whole job gets 1 or 2 cores.
* **server only** (the earlier method, for comparison): only the server is pinned and the
  simulator may run anywhere. On one core the simulator then runs on the other core for
  free, on two it takes its share from the server, so this ratio understates what a second
  core gives.

Before the first measured round a warm-up, discarded, runs the whole workload on one core
in short windows for at least 45 s and then until the simulator's CPU per
frame served settles: for its first half-minute or so it used about five times its later
CPU per frame, then dropped at once, which skewed the first round (a minimum time is what
catches that; stability alone passed on the early plateau). Each round then measures 1
and 2 cores back to back, in alternating order, and gives its own 2-core / 1-core ratio:
the figure is the median over the rounds, with their spread.

Per phase it records decoded and analysed frames/s, CPU seconds per kind of server thread
(event loop, camera readers) and the simulator's, and frames per CPU-second of the server
and of the whole workload. On two cores it takes py-spy profiles (GIL holders, and running
threads). From those come per-frame costs, and the ceilings that would bind on a bigger
host (see bench/RESULTS.md).
"""

from __future__ import annotations

import contextlib
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from clients.sim import RtspCamera
from server.bench import BenchContext, SuiteResult
from server.bench.decode import DETECT_FPS
from server.bench.harness import (
    BenchError,
    ProbeServer,
    camera_config,
    clip,
    cpu_rate,
    cpu_seconds,
    machine,
    rate,
    thread_rates,
    verdict,
)
from server.bench.profile import profile

__all__ = ["pin_process", "round_ratios", "run"]

TARGET = 1.8
# After its minimum time, the warm-up ends once the simulator's CPU per frame of two
# successive windows differs by at most this share or by at most WARMUP_FLOOR_MS (once
# settled it is small and jumps by a few hundredths of a ms from window to window), or
# after WARMUP_MAX windows.
WARMUP_SHARE = 0.2
WARMUP_FLOOR_MS = 0.05
WARMUP_MAX = 18


def pin_process(pid: int, cpus: set[int]) -> None:
    """Pin every thread of ``pid`` to ``cpus`` (threads started later inherit it)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError, FileNotFoundError):
            os.sched_setaffinity(int(task.name), cpus)


MODES = ("workload", "server only")


def _phase(
    server: ProbeServer,
    sim_pid: int,
    mode: str,
    cpus: set[int],
    *,
    all_cpus: set[int],
    settle: float,
    window: float,
) -> dict[str, Any]:
    pin_process(server.pid, cpus)
    pin_process(sim_pid, cpus if mode == "workload" else all_cpus)
    time.sleep(settle)
    before, sim0 = server.stats(), cpu_seconds(sim_pid)
    time.sleep(window)
    after, sim1 = server.stats(), cpu_seconds(sim_pid)
    elapsed = after["uptime"] - before["uptime"]
    threads = thread_rates(before, after)
    decoded = rate(before, after, "frames")
    server_cpu = cpu_rate(before, after)
    sim_cpu = (sim1 - sim0) / elapsed
    return {
        "mode": mode,
        "cpus": sorted(cpus),
        "decoded_fps": round(decoded, 1),
        "analysed_fps": round(rate(before, after, "processed"), 1),
        "server_cpu_s_per_s": round(server_cpu, 3),
        "thread_cpu_s_per_s": dict(sorted(threads.items(), key=lambda kv: -kv[1])),
        "simulator_cpu_s_per_s": round(sim_cpu, 3),
        "frames_per_server_cpu_s": round(decoded / server_cpu, 1) if server_cpu else None,
        "frames_per_workload_cpu_s": (
            round(decoded / (server_cpu + sim_cpu), 1) if server_cpu + sim_cpu else None
        ),
    }


def _warm_up(
    ctx: BenchContext,
    server: ProbeServer,
    sim_pid: int,
    one: set[int],
    both: set[int],
    *,
    window: float,
    minimum: float,
) -> list[dict[str, Any]]:
    """Discarded phases on one core for ``minimum`` seconds, then until the simulator's CPU
    per frame settles."""
    phases: list[dict[str, Any]] = []
    start = time.monotonic()
    for i in range(WARMUP_MAX):
        phase = _phase(server, sim_pid, "workload", one, all_cpus=both, settle=0.0, window=window)
        phases.append(phase)
        fps = phase["decoded_fps"]
        phase["simulator_ms_per_frame"] = (
            round(phase["simulator_cpu_s_per_s"] / fps * 1000, 4) if fps else None
        )
        ctx.progress(
            f"scale: warm-up {i + 1}: {fps:.1f} fps, simulator "
            f"{phase['simulator_cpu_s_per_s']:.3f} CPU-s/s, {phase['simulator_ms_per_frame']} "
            "ms/frame"
        )
        if len(phases) >= 2 and time.monotonic() - start >= minimum:
            now, prev = phases[-1]["simulator_ms_per_frame"], phases[-2]["simulator_ms_per_frame"]
            if (
                now is not None
                and prev is not None
                and abs(now - prev) <= max(WARMUP_SHARE * prev, WARMUP_FLOOR_MS)
            ):
                break
    return phases


def round_ratios(phases: list[dict[str, Any]], mode: str) -> list[float]:
    """Per round, the 2-core decoded fps over the 1-core decoded fps of ``mode``."""
    ratios: list[float] = []
    rounds = sorted({p["round"] for p in phases if p["mode"] == mode})
    for r in rounds:
        fps = {
            len(p["cpus"]): p["decoded_fps"]
            for p in phases
            if p["mode"] == mode and p["round"] == r
        }
        if fps.get(1) and 2 in fps:
            ratios.append(round(fps[2] / fps[1], 3))
    return ratios


def _compare(phases: list[dict[str, Any]], mode: str) -> dict[str, Any]:
    """Mean frames/s and CPU of one pinning mode on 1 and on 2 cores, and their ratios;
    the per-round ratios with their median and spread."""
    out: dict[int, dict[str, float]] = {}
    for n in (1, 2):
        sel = [p for p in phases if p["mode"] == mode and len(p["cpus"]) == n]
        fps = sum(p["decoded_fps"] for p in sel) / len(sel)
        server = sum(p["server_cpu_s_per_s"] for p in sel) / len(sel)
        sim = sum(p["simulator_cpu_s_per_s"] for p in sel) / len(sel)
        out[n] = {"fps": fps, "server": server, "workload": server + sim}
    one, two = out[1], out[2]

    def ratio(a: float, b: float) -> float:
        return round(a / b, 3) if b else 0.0

    def per_cpu(side: dict[str, float], cpu: str) -> float:
        return side["fps"] / side[cpu] if side[cpu] else 0.0

    per_round = round_ratios(phases, mode)
    return {
        "fps_1_core": round(one["fps"], 1),
        "fps_2_cores": round(two["fps"], 1),
        # The figure: the median of the rounds' own ratios (a round measures 1 and 2 cores
        # back to back, so slow drifts of the machine's other load cancel within it).
        "ratio": round(statistics.median(per_round), 3) if per_round else 0.0,
        "round_ratios": per_round,
        "ratio_min": min(per_round, default=0.0),
        "ratio_max": max(per_round, default=0.0),
        "ratio_of_means": ratio(two["fps"], one["fps"]),
        "server_cpu_1_core": round(one["server"], 3),
        "server_cpu_2_cores": round(two["server"], 3),
        "workload_cpu_1_core": round(one["workload"], 3),
        "workload_cpu_2_cores": round(two["workload"], 3),
        # Frames per CPU-second on 2 cores over that on 1: 1.0 means a second core costs
        # nothing extra (no lock or GIL contention), whatever share of the cores was granted.
        "frames_per_server_cpu_s_ratio": ratio(per_cpu(two, "server"), per_cpu(one, "server")),
        "frames_per_workload_cpu_s_ratio": ratio(
            per_cpu(two, "workload"), per_cpu(one, "workload")
        ),
    }


def _costs(phases: list[dict[str, Any]], prof: dict[str, Any]) -> dict[str, Any]:
    """Per-frame costs on two cores and the ceilings they imply for one process."""
    two = [p for p in phases if len(p["cpus"]) == 2 and p["mode"] == "workload"]
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
    """Alternate 1 and 2 cores on one loaded server, both pinning modes; profile on 2 cores."""
    if ctx.quick:
        size, cams, rounds, settle, window, prof_s = (320, 180), 2, 1, 1.0, 2.0, 1.0
        warm_window, warm_min = 1.0, 2.0
    else:
        size, cams, rounds, settle, window, prof_s = (1920, 1080), 8, 4, 3.0, 10.0, 10.0
        warm_window, warm_min = 5.0, 45.0
    cpus_all = sorted(os.sched_getaffinity(0))
    one, both = {cpus_all[0]}, set(cpus_all[:2])
    ctx.progress(f"scale: preparing the {size[0]}x{size[1]} clip (cached)")
    path = clip(size[0], size[1], 120.0)
    phases: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="motionhub-bench-") as tmp,
        RtspCamera({f"s{i}": path for i in range(cams)}) as cam,
    ):
        sim_pid = cam.pid
        if sim_pid is None:
            raise BenchError("the RTSP simulator is not running")
        cameras = [
            camera_config(f"c{i}", url, fps=DETECT_FPS) for i, url in enumerate(cam.urls.values())
        ]
        with ProbeServer({"cameras": cameras}, Path(tmp)) as server:
            server.wait_online(cams)
            # The first seconds run differently on both sides (the simulator's pipelines
            # start, decoders fill their frame pools): not part of any round.
            warmup = _warm_up(ctx, server, sim_pid, one, both, window=warm_window, minimum=warm_min)
            for r in range(rounds):
                for mode in MODES:
                    # Alternate which core count goes first, so neither always follows the other.
                    for cpus in (one, both) if r % 2 == 0 else (both, one):
                        phase = _phase(
                            server, sim_pid, mode, cpus, all_cpus=both, settle=settle, window=window
                        )
                        phase["round"] = r + 1
                        phases.append(phase)
                        ctx.progress(
                            f"scale: round {r + 1}/{rounds}, {mode}, {len(cpus)} core(s): "
                            f"{phase['decoded_fps']:.1f} fps"
                        )
            pin_process(server.pid, both)
            pin_process(sim_pid, both)
            ctx.progress(f"scale: profiling on 2 cores ({2 * prof_s:g} s)")
            prof = profile(server.pid, prof_s)
    workload = _compare(phases, "workload")
    data: dict[str, Any] = {
        "suite": "scale",
        "quick": ctx.quick,
        "machine": machine(),
        "load": {
            "cameras": cams,
            "size": list(size),
            "served_fps": 120,
            "window_s": window,
            "rounds": rounds,
            "warmup_window_s": warm_window,
        },
        "warmup": warmup,
        "phases": phases,
        **workload,
        "target": TARGET,
        "meets": workload["ratio"] >= TARGET,
        "server_only": _compare(phases, "server only"),
        "costs": _costs(phases, prof),
        "profile": prof,
    }
    return SuiteResult("scale", data, _markdown(data))


def _markdown(data: dict[str, Any]) -> str:
    load, costs, so = data["load"], data["costs"], data["server_only"]
    ok = verdict(data["meets"])
    lines = [
        f"## scale: {load['cameras']} cameras {load['size'][0]}x{load['size'][1]}, "
        "2 cores vs 1 core (one process, re-pinned between rounds)",
        "",
        "| round | pinned | cores | decoded fps | analysed fps | server CPU s/s | event loop s/s | "
        "readers s/s | simulator s/s | frames per server / workload CPU-s |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in data["phases"]:
        t = p["thread_cpu_s_per_s"]
        lines.append(
            f"| {p['round']} | {p['mode']} | {len(p['cpus'])} | {p['decoded_fps']:.1f} | "
            f"{p['analysed_fps']:.1f} | {p['server_cpu_s_per_s']:.2f} | "
            f"{t.get('MainThread', 0.0):.2f} | {t.get('camera readers', 0.0):.2f} | "
            f"{p['simulator_cpu_s_per_s']:.2f} | {p['frames_per_server_cpu_s']} / "
            f"{p['frames_per_workload_cpu_s']} |"
        )
    warm = data["warmup"]
    lines += [
        "",
        f"Warm-up (discarded, workload on 1 core): {len(warm)} windows of "
        f"{load['warmup_window_s']:g} s; simulator CPU-s/s "
        + ", ".join(f"{p['simulator_cpu_s_per_s']:.3f}" for p in warm)
        + "; ms per frame served "
        + ", ".join(f"{p['simulator_ms_per_frame']}" for p in warm)
        + "; decoded fps "
        + ", ".join(f"{p['decoded_fps']:.1f}" for p in warm)
        + ".",
        "",
        "Server and simulator pinned together (the whole workload on exactly 1, then 2 "
        f"cores): median of the rounds' 2-core / 1-core ratios **{data['ratio']:.2f}x** "
        f"(target >= {data['target']}x, {ok}); rounds "
        + ", ".join(f"{r:.2f}" for r in data["round_ratios"])
        + f" (spread {data['ratio_min']:.2f}-{data['ratio_max']:.2f}); ratio of the means "
        f"{data['fps_2_cores']:.1f} / {data['fps_1_core']:.1f} = "
        f"{data['ratio_of_means']:.2f}x. CPU the workload "
        f"got: {data['workload_cpu_2_cores']:.2f} / {data['workload_cpu_1_core']:.2f} s/s; "
        "frames per CPU-second, 2 cores / 1 core: "
        f"{data['frames_per_workload_cpu_s_ratio']:.2f} (workload), "
        f"{data['frames_per_server_cpu_s_ratio']:.2f} (server alone) (1.0 = no cost to "
        "using the second core).",
        "",
        f"Server pinned alone (simulator free to use either core): median of the rounds "
        f"{so['ratio']:.2f}x ({so['ratio_min']:.2f}-{so['ratio_max']:.2f}); means "
        f"{so['fps_2_cores']:.1f} / {so['fps_1_core']:.1f}; server CPU "
        f"{so['server_cpu_2_cores']:.2f} / {so['server_cpu_1_core']:.2f} s/s; frames per "
        f"server CPU-second {so['frames_per_server_cpu_s_ratio']:.2f}. Not a fair ratio: on "
        "1 core the simulator runs on the other core for free, on 2 it takes its share from "
        "the server.",
        "",
        "Per-frame costs on 2 cores (workload pinned): "
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
