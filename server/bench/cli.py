"""``motionhub bench``: run performance suites, print a summary, write JSON and markdown."""

from __future__ import annotations

import json
import os
import shlex
import time
from datetime import UTC, datetime
from pathlib import Path

import click

from server.bench import SUITES, BenchContext, load_suite
from server.evaluation.cli import default_datasets

__all__ = ["bench_command"]


@click.command(name="bench")
@click.argument("suite", required=False, default="all")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON on stdout.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("bench/out"),
    show_default=True,
    help="Folder for <suite>.json and <suite>.md.",
)
@click.option("--quick", is_flag=True, help="Fewer frames: a fast smoke run, noisier numbers.")
@click.option(
    "--duration",
    type=click.FloatRange(min=1.0),
    default=None,
    help="Seconds for the memory soak (default: 600, or 20 with --quick).",
)
@click.option(
    "--datasets",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Test footage folder (default: $MOTIONHUB_DATASETS or ../shared/datasets).",
)
def bench_command(
    *,
    suite: str,
    as_json: bool,
    out_dir: Path,
    quick: bool,
    duration: float | None,
    datasets: Path | None,
) -> None:
    """Run the SUITE benchmark (default: all registered suites).

    Suites: detector (cost per 1080p frame against a Frigate-like detector and OpenCV
    MOG2), decode (pipeline fps vs ffmpeg decode-only), latency (frame to WebSocket and
    MQTT), fanout (2,000 WebSocket clients), memory (RSS per camera, soak), scale (2 cores
    vs 1). Each writes OUT/<suite>.json and OUT/<suite>.md and appends to OUT/summary.md;
    see bench/README.md.
    """
    from server.cli import check_environment  # the command line's own module imports this

    check_environment()
    names = list(SUITES) if suite == "all" else [suite]
    unknown = [n for n in names if n not in SUITES]
    if unknown:
        raise click.BadParameter(
            f"unknown suite {unknown[0]!r}; choose from {', '.join(SUITES)} or all",
            param_hint="SUITE",
        )
    started = time.monotonic()

    def progress(msg: str) -> None:
        click.echo(f"[{time.monotonic() - started:6.1f}s] {msg}", err=True)

    ctx = BenchContext(
        datasets=datasets or default_datasets(),
        quick=quick,
        progress=progress,
        duration=duration,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    argv = ["motionhub", "bench", suite, *(["--quick"] if quick else [])]
    argv += ["--duration", f"{duration:g}"] if duration is not None else []
    command = shlex.join(argv)
    collected = {}
    for name in names:
        load_before = [round(x, 2) for x in os.getloadavg()]
        progress(f"{name}: starting (load average {load_before})")
        result = load_suite(name)(ctx)
        result.data.setdefault("load_avg_before", load_before)
        (out_dir / f"{name}.json").write_text(json.dumps(result.data, indent=2) + "\n")
        (out_dir / f"{name}.md").write_text(result.summary)
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        with (out_dir / "summary.md").open("a", encoding="utf-8") as summary:
            summary.write(f"<!-- {stamp}: {command} -->\n{result.summary}\n")
        collected[name] = result.data
        if not as_json:
            click.echo(result.summary)
    if as_json:
        click.echo(json.dumps(collected, indent=2))
    click.echo(f"wrote {', '.join(f'{n}.json/.md' for n in names)} to {out_dir}", err=True)
