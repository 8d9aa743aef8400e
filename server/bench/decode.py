"""The ``decode`` bench suite: pipeline throughput against FFmpeg's decode-only limit.

The simulator serves a 1080p H.264 clip stamped at 120 frames/s over RTSP/TCP, faster than
this machine decodes it, so both sides run flat out and TCP back-pressure paces the server:
the rate a client reaches is its own limit. In the same run, alternating, the bench measures

* ``ffmpeg -rtsp_transport tcp -i URL -f null -``, one process per stream (decode only);
* the server (``motionhub serve``, the production path: reader thread, PyAV decode, luma
  view, detector, event tracker, hub) on the same streams, as frames decoded per second
  and frames analysed per second.

For 1 stream the server can analyse at most ``detect.fps`` (60, the configuration's
maximum) of the frames it decodes; for 8 streams every decoded frame is analysed. A last
case runs the 8 streams at the default ``detect.fps`` of 10, as deployed: every frame is
decoded, one in four or so is analysed. Since
FFmpeg's command line decodes one stream with as many threads as there are cores while
the server gives each camera one decoder thread, the 1-stream case is also run with the
server's decoder on FFmpeg's automatic thread count (``MOTIONHUB_DECODER_THREADS=0``).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clients.sim import RtspCamera
from server.bench import BenchContext, SuiteResult
from server.bench.harness import (
    ProbeServer,
    camera_config,
    clip,
    cpu_rate,
    ffmpeg_decode_rate,
    machine,
    rate,
    verdict,
)

__all__ = ["Timing", "pipeline_rate", "run"]

TARGET = 0.95
DETECT_FPS = 60.0


@dataclass(frozen=True)
class Timing:
    """How long each side is measured: ``rounds`` of ``window`` seconds after ``settle``."""

    rounds: int
    window: float
    settle: float


def pipeline_rate(
    urls: list[str],
    workdir: Path,
    *,
    window: float,
    settle: float,
    env: dict[str, str] | None = None,
    cpus: list[int] | None = None,
    detect_fps: float = DETECT_FPS,
) -> dict[str, Any]:
    """Decoded and analysed frames per second of the server on ``urls``."""
    cameras = [camera_config(f"c{i}", u, fps=detect_fps) for i, u in enumerate(urls)]
    with ProbeServer({"cameras": cameras}, workdir, env=env, cpus=cpus) as server:
        server.wait_online(len(urls))
        time.sleep(settle)
        before = server.stats()
        time.sleep(window)
        after = server.stats()
    decoded = rate(before, after, "frames")
    cpu = cpu_rate(before, after)
    return {
        "decoded_fps": decoded,
        "cpu_ms_per_frame": cpu / decoded * 1000 if decoded else None,
        "analysed_fps": rate(before, after, "processed"),
        "dropped": sum(c["dropped"] for c in after["cameras"].values()),
        "decode_errors": sum(c["decode_errors"] for c in after["cameras"].values()),
        "server_cpu_s_per_s": cpu,
    }


def _case(
    ctx: BenchContext,
    name: str,
    urls: list[str],
    workdir: Path,
    *,
    timing: Timing,
    env: dict[str, str] | None = None,
    detect_fps: float = DETECT_FPS,
) -> dict[str, Any]:
    rounds, window, settle = timing.rounds, timing.window, timing.settle
    ffmpeg: list[float] = []
    ff_cpu: list[float] = []
    pipe_cpu: list[float] = []
    decoded: list[float] = []
    analysed: list[float] = []
    details: list[dict[str, Any]] = []
    for r in range(rounds):
        ctx.progress(f"decode: {name}: round {r + 1}/{rounds}: ffmpeg -f null")
        ff = ffmpeg_decode_rate(urls, window, settle=settle)
        ctx.progress(f"decode: {name}: round {r + 1}/{rounds}: motionhub pipeline")
        pipe = pipeline_rate(
            urls, workdir, window=window, settle=settle, env=env, detect_fps=detect_fps
        )
        ffmpeg.append(ff["fps"])
        if ff["cpu_ms_per_frame"] and pipe["cpu_ms_per_frame"]:
            ff_cpu.append(ff["cpu_ms_per_frame"])
            pipe_cpu.append(pipe["cpu_ms_per_frame"])
        decoded.append(pipe["decoded_fps"])
        analysed.append(pipe["analysed_fps"])
        details.append({"ffmpeg": ff, "pipeline": pipe})
        ctx.progress(
            f"decode: {name}: ffmpeg {ff['fps']:.1f} fps, motionhub {pipe['decoded_fps']:.1f} "
            f"decoded / {pipe['analysed_fps']:.1f} analysed fps"
        )
    # Sums over the rounds: each round is ffmpeg then the pipeline back to back, so a
    # burst of load from elsewhere hits both sides of the ratio about equally.
    ratio = sum(decoded) / sum(ffmpeg) if sum(ffmpeg) else 0.0
    # CPU time per frame hardly depends on how much of the machine others take, so its
    # ratio is what the throughput ratio would be with both sides CPU-bound on idle cores.
    cpu_ratio = sum(ff_cpu) / sum(pipe_cpu) if pipe_cpu else None
    return {
        "streams": len(urls),
        "server_env": env or {},
        "detect_fps": detect_fps,
        "ffmpeg_fps": round(sum(ffmpeg) / rounds, 1),
        "pipeline_decoded_fps": round(sum(decoded) / rounds, 1),
        "pipeline_analysed_fps": round(sum(analysed) / rounds, 1),
        "ratio": round(ratio, 3),
        "ffmpeg_cpu_ms_per_frame": round(sum(ff_cpu) / len(ff_cpu), 3) if ff_cpu else None,
        "pipeline_cpu_ms_per_frame": round(sum(pipe_cpu) / len(pipe_cpu), 3) if pipe_cpu else None,
        "cpu_cost_ratio": round(cpu_ratio, 3) if cpu_ratio else None,
        "target": TARGET,
        "meets": ratio >= TARGET,
        "rounds": details,
    }


def run(ctx: BenchContext) -> SuiteResult:
    """Measure both sides for 1 and 8 streams (2 in quick mode) and their ratio."""
    if ctx.quick:
        size, many, rounds, window, settle = (320, 180), 2, 1, 1.5, 0.5
    else:
        size, many, rounds, window, settle = (1920, 1080), 8, 2, 10.0, 3.0
    ctx.progress(f"decode: preparing the {size[0]}x{size[1]} clip (cached after the first run)")
    path = clip(size[0], size[1], 120.0)
    cases: dict[str, Any] = {}
    timing = Timing(rounds, window, settle)
    with tempfile.TemporaryDirectory(prefix="motionhub-bench-") as tmp:
        workdir = Path(tmp)
        with RtspCamera({f"s{i}": path for i in range(many)}) as cam:
            urls = list(cam.urls.values())
            one = urls[:1]
            if not ctx.quick:
                cases["1 stream"] = _case(ctx, "1 stream", one, workdir, timing=timing)
            if not ctx.quick:
                cases["1 stream, auto decoder threads"] = _case(
                    ctx,
                    "1 stream, auto threads",
                    one,
                    workdir,
                    env={"MOTIONHUB_DECODER_THREADS": "0"},
                    timing=timing,
                )
            cases[f"{many} streams"] = _case(ctx, f"{many} streams", urls, workdir, timing=timing)
            if not ctx.quick:
                name = f"{many} streams, detect.fps 10 (the default)"
                cases[name] = _case(ctx, name, urls, workdir, timing=timing, detect_fps=10.0)
    data: dict[str, Any] = {
        "suite": "decode",
        "quick": ctx.quick,
        "machine": machine(),
        "clip": {"width": size[0], "height": size[1], "fps": 120, "codec": "h264"},
        "detect_fps": DETECT_FPS,
        "window_s": window,
        "cases": cases,
    }
    return SuiteResult("decode", data, _markdown(data))


def _markdown(data: dict[str, Any]) -> str:
    clip_info = data["clip"]
    lines = [
        f"## decode: pipeline throughput vs ffmpeg decode-only ({clip_info['width']}x"
        f"{clip_info['height']} H.264 over RTSP/TCP, served faster than it decodes)",
        "",
        "| case | ffmpeg -f null fps | motionhub decoded fps | analysed fps | ratio | target | "
        "CPU ms/frame ffmpeg / motionhub | CPU-cost ratio |",
        "|---|---:|---:|---:|---:|---|---|---:|",
    ]
    for name, c in data["cases"].items():
        ok = verdict(c["meets"])
        cpu = (
            f"{c['ffmpeg_cpu_ms_per_frame']:.2f} / {c['pipeline_cpu_ms_per_frame']:.2f} | "
            f"{c['cpu_cost_ratio']:.3f}"
            if c["cpu_cost_ratio"]
            else "- | -"
        )
        lines.append(
            f"| {name} | {c['ffmpeg_fps']:.1f} | {c['pipeline_decoded_fps']:.1f} | "
            f"{c['pipeline_analysed_fps']:.1f} | {c['ratio']:.3f} | >= {TARGET} {ok} | "
            f"{cpu} |"
        )
    lines += [
        "",
        f"Analysed fps is capped by `detect.fps` per camera ({data['detect_fps']:g} unless the "
        "case says otherwise). The CPU-cost ratio is ffmpeg's CPU time per frame over the "
        "server's: what the fps ratio becomes when both are CPU-bound on cores of their own. "
        f"Load average at the end: {data['machine']['load_avg']}.",
    ]
    return "\n".join(lines) + "\n"
