"""Run several methods over sequences in lockstep and collect their scores."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

from server.evaluation.baselines import MethodFactory
from server.evaluation.dataset import Sequence as EvalSequence
from server.evaluation.report import Report, SequenceReport
from server.evaluation.scoring import Score

__all__ = ["Progress", "evaluate"]

Progress = Callable[[int, int, str, int, int], None]
"""``(sequence index, sequence count, sequence name, frames done, frames total)``."""


def evaluate(
    sequences: Sequence[EvalSequence],
    methods: Mapping[str, MethodFactory],
    *,
    max_frames: int | None = None,
    progress: Progress | None = None,
) -> Report:
    """Feed every frame of every sequence to every method (lockstep, so each frame is decoded
    once) and score masks and alarms; only the method calls are timed."""
    report = Report(methods=list(methods))
    for idx, seq in enumerate(sequences):
        runners = {name: factory(seq.shape) for name, factory in methods.items()}
        scores = {name: Score() for name in methods}
        total = len(seq)
        done = 0
        roi = seq.roi
        for frame in seq.frames(max_frames):
            for name, run in runners.items():
                t0 = time.perf_counter()
                mask, alarm = run(frame.luma)
                dt = time.perf_counter() - t0
                sc = scores[name]
                sc.seconds += dt
                sc.frames += 1
                if frame.truth is not None:
                    sc.add(frame.truth, roi, mask, alarm, still=frame.still)
            done += 1
            if progress is not None:
                progress(idx, len(sequences), seq.name, done, total)
        report.sequences.append(SequenceReport(seq.name, seq.synthetic, done, scores))
    return report
