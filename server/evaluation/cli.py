"""``motionhub eval``: score motionhub and OpenCV baselines on CDnet-format sequences."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import click
from pydantic import ValidationError

from detector import DetectorConfig
from server.evaluation.baselines import BASELINES, MethodFactory, motionhub_method
from server.evaluation.dataset import DiskSequence, Sequence, SequenceError, discover
from server.evaluation.report import format_table
from server.evaluation.runner import evaluate
from server.evaluation.synth import StillSequence
from server.validation_text import loc_text, plain_message

__all__ = ["default_datasets", "eval_command"]


def default_datasets() -> Path:
    """``$MOTIONHUB_DATASETS``, else ``<repo>/../shared/datasets``."""
    env = os.environ.get("MOTIONHUB_DATASETS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2].parent / "shared" / "datasets"


def _parse_tuning(pairs: tuple[str, ...]) -> DetectorConfig:
    values: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"{pair!r}: expected KEY=VALUE", param_hint="--set")
        values[key.strip()] = value.strip()
    try:
        return DetectorConfig.model_validate(values)
    except ValidationError as exc:
        raise click.BadParameter(_tuning_errors(exc), param_hint="--set") from None


def _tuning_errors(exc: ValidationError) -> str:
    """One line per refused setting, as ``KEY: why``; an unknown key lists the known ones."""
    lines = []
    for err in exc.errors(include_url=False, include_input=False):
        key = loc_text(err["loc"]) if err["loc"] else "--set"
        if err["type"] == "extra_forbidden":
            known = ", ".join(sorted(DetectorConfig.model_fields))
            lines.append(f"{key}: unknown detector setting; choose from {known}")
        else:
            lines.append(f"{key}: {plain_message(err['msg'])}")
    return "; ".join(lines)


class _Progress:
    """Progress on stderr: a rewritten line on a terminal, a line every few seconds otherwise."""

    def __init__(self) -> None:
        self._tty = sys.stderr.isatty()
        self._last = 0.0
        self._start = time.monotonic()

    def __call__(self, idx: int, count: int, name: str, done: int, total: int) -> None:
        now = time.monotonic()
        finished = done >= total
        if not finished and now - self._last < (0.2 if self._tty else 5.0):
            return
        self._last = now
        msg = f"[{idx + 1}/{count}] {name}: {done}/{total} frames ({now - self._start:.0f} s)"
        if self._tty:
            click.echo(f"\r\x1b[K{msg}", err=True, nl=finished)
        else:
            click.echo(msg, err=True)


@click.command(name="eval")
@click.argument("seq_dirs", nargs=-1, type=click.Path(path_type=Path, file_okay=False))
@click.option(
    "--baseline",
    default="mog2,knn",
    show_default=True,
    help="Comma-separated OpenCV baselines to run alongside (mog2, knn), or 'none'.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON on stdout.")
@click.option(
    "--max-frames",
    type=click.IntRange(min=1),
    default=None,
    help="Score at most N frames of each recorded sequence (warm-up frames still run).",
)
@click.option(
    "--still-frames",
    type=click.IntRange(min=0, max=100_000),
    default=150,
    show_default=True,
    help="Length of the generated still period (noise, drift, light switch, IR flip, exposure "
    "steps) added for each sequence; 0 skips them.",
)
@click.option(
    "--set",
    "tuning",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a detector setting (repeatable), e.g. --set sensitivity=70.",
)
def eval_command(
    *,
    seq_dirs: tuple[Path, ...],
    baseline: str,
    as_json: bool,
    max_frames: int | None,
    still_frames: int,
    tuning: tuple[str, ...],
) -> None:
    """Score motion detection on CDnet-format sequences (SEQ_DIR: a sequence folder or a folder
    of them; default: the shared datasets).

    Prints per sequence and method pixel precision/recall/F, frame precision/recall/F1, false
    alarms on negative frames and ms per frame, then the means over the recorded sequences, the
    false-alarm rate over the generated still periods, and the F ratio against MOG2.
    """
    config = _parse_tuning(tuning)
    methods: dict[str, MethodFactory] = {"motionhub": motionhub_method(config)}
    for name in (b.strip().lower() for b in baseline.split(",")):
        if name in ("", "none"):
            continue
        if name not in BASELINES:
            raise click.BadParameter(
                f"unknown baseline {name!r}; choose from {', '.join(BASELINES)}",
                param_hint="--baseline",
            )
        methods[name] = BASELINES[name]()
    roots = seq_dirs or (default_datasets(),)
    found: list[DiskSequence] = []
    try:
        for root in roots:
            found.extend(discover(root))
    except SequenceError as exc:
        raise click.ClickException(str(exc)) from exc
    sequences: list[Sequence] = list(found)
    if still_frames:
        real_after = max_frames if max_frames is not None else 150
        sequences += [
            StillSequence(s, still_frames, real_after, seed=i) for i, s in enumerate(found)
        ]
    click.echo(
        f"evaluating {', '.join(methods)} on {len(found)} sequence(s)"
        + (f" + {len(found)} generated still period(s)" if still_frames else ""),
        err=True,
    )
    try:
        report = evaluate(sequences, methods, max_frames=max_frames, progress=_Progress())
    except SequenceError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        click.echo(format_table(report))
