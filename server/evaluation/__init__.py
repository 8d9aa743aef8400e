"""Quality evaluation of the motion detector against ground truth and OpenCV baselines."""

from __future__ import annotations

from server.evaluation.baselines import BASELINES, motionhub_method, opencv_method
from server.evaluation.dataset import DiskSequence, EvalFrame, SequenceError, discover
from server.evaluation.report import Report, SequenceReport, format_table
from server.evaluation.runner import evaluate
from server.evaluation.scoring import Score, frame_label, prf
from server.evaluation.synth import StillSequence, median_background

__all__ = [
    "BASELINES",
    "DiskSequence",
    "EvalFrame",
    "Report",
    "Score",
    "SequenceError",
    "SequenceReport",
    "StillSequence",
    "discover",
    "evaluate",
    "format_table",
    "frame_label",
    "median_background",
    "motionhub_method",
    "opencv_method",
    "prf",
]
