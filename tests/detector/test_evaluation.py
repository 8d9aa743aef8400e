"""The evaluation package on a small CDnet-format sequence written by the test, and the
``motionhub eval`` command run as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from detector_harness import background, camera, with_box

from server.evaluation import (
    Score,
    StillSequence,
    discover,
    evaluate,
    frame_label,
    motionhub_method,
    opencv_method,
    prf,
)
from server.evaluation.synth import schedule

H, W = 120, 160


def write_sequence(root: Path, n: int = 40, padded: bool = False, first: int = 11) -> Path:
    """A square moving across a textured scene, frames 1..n, scored from ``first`` on."""
    seq = root / "square"
    (seq / ("input" if padded else "in")).mkdir(parents=True)
    (seq / "groundtruth").mkdir()
    rng = np.random.default_rng(0)
    scene = background(H, W, seed=4)
    for i in range(1, n + 1):
        x = 10 + 3 * i
        box = (x, 40, x + 24, 70)
        name = f"input/in{i:06d}.jpg" if padded else f"in/frame_{i}.jpg"
        cv2.imwrite(str(seq / name), camera(with_box(scene, box, 230.0), rng, quality=None))
        truth = np.zeros((H, W), np.uint8)
        truth[40:70, x : x + 24] = 255
        truth[40:70, x - 1] = 170  # boundary: ignored
        cv2.imwrite(str(seq / "groundtruth" / f"gt{i:06d}.png"), truth)
    (seq / "temporalROI.txt").write_text(f"{first} {n}\n")
    cv2.imwrite(str(seq / "ROI.bmp"), np.full((H, W), 255, np.uint8))
    return seq


def test_prf_and_frame_labels() -> None:
    assert prf(8, 2, 2) == pytest.approx((0.8, 0.8, 0.8))
    assert prf(0, 0, 0) == (0.0, 0.0, 0.0)
    assert frame_label(0, 1000) is False
    assert frame_label(2, 1000) is True
    assert frame_label(1, 1000) is None  # between 0 and 0.2 %: not scored
    assert frame_label(0, 0) is None


def test_score_follows_label_values() -> None:
    truth = np.array([[255, 255, 0, 50], [85, 170, 0, 0]], np.uint8)
    roi = np.ones_like(truth, bool)
    mask = np.array([[255, 0, 255, 255], [255, 255, 0, 0]], np.uint8)
    s = Score()
    s.add(truth, roi, mask, alarm=True)
    # 85 and 170 are ignored; the hard shadow (50) is a negative.
    assert (s.tp, s.fp, s.fn) == (1, 2, 1)
    assert s.frame_tp == 1
    small = np.zeros((1, 2), np.uint8)
    s2 = Score()
    s2.add(np.zeros((2, 4), np.uint8), roi, small, alarm=True, still=True)
    assert (s2.frame_fp, s2.still_alarms, s2.still_frames) == (1, 1, 1)


@pytest.mark.parametrize("padded", [False, True], ids=["ucsd-names", "cdnet-names"])
def test_discover_pairs_frames_by_number(tmp_path: Path, padded: bool) -> None:
    write_sequence(tmp_path, n=12, padded=padded, first=3)
    (seq,) = discover(tmp_path)
    assert seq.name == "square"
    assert seq.numbers() == list(range(1, 13))
    frames = list(seq.frames())
    assert [f.number for f in frames] == list(range(1, 13))
    assert [f.truth is not None for f in frames] == [False, False] + [True] * 10
    assert len(list(seq.frames(max_scored=4))) == 6


def test_evaluate_scores_motionhub_and_baselines(tmp_path: Path) -> None:
    write_sequence(tmp_path)
    seqs = discover(tmp_path)
    still = StillSequence(seqs[0], still=30, real=10)
    report = evaluate(
        [*seqs, still],
        {"motionhub": motionhub_method(), "mog2": opencv_method("mog2")},
    )
    ours = report.sequences[0].scores["motionhub"]
    # The square is in view from the first frame, and the background it uncovers stays joined
    # to it as one blob, so precision is modest; recall must be high.
    assert ours.pixel[1] > 0.75
    assert ours.pixel[2] > 0.45
    assert report.sequences[0].scores["mog2"].frames == ours.frames
    assert ours.frame[2] == 1.0
    assert report.still("motionhub").still_frames == 30
    assert report.still("motionhub").still_alarms == 0
    data = report.to_dict()
    assert data["methods"] == ["motionhub", "mog2"]
    assert data["f_ratio_vs_mog2"]["motionhub"] == pytest.approx(report.f_ratio("motionhub"))


def test_still_schedule_covers_every_distractor() -> None:
    states = [schedule(i, 150) for i in range(150)]
    assert any(s.lamp > 0 for s in states)
    assert any(s.ir for s in states)
    gains = [s.gain for s in states]
    assert max(gains) > 1.3
    assert min(gains) < 0.8


def test_eval_command_table_json_and_progress(tmp_path: Path) -> None:
    write_sequence(tmp_path)
    base = [sys.executable, "-c", "from server.cli import main; main()", "eval", str(tmp_path)]
    table = subprocess.run(
        [*base, "--still-frames", "20", "--max-frames", "20"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "square" in table.stdout
    assert "square+still" in table.stdout
    assert "mean pixel F ratio motionhub / mog2" in table.stdout
    assert "still periods  motionhub" in table.stdout
    assert "[1/2] square" in table.stderr
    out = subprocess.run(
        [*base, "--json", "--baseline", "none", "--still-frames", "0", "--set", "sensitivity=80"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    data = json.loads(out.stdout)
    assert data["methods"] == ["motionhub"]
    assert data["sequences"][0]["scores"]["motionhub"]["pixel_f"] > 0.3


def test_eval_command_rejects_bad_input(tmp_path: Path) -> None:
    base = [sys.executable, "-c", "from server.cli import main; main()", "eval"]
    empty = subprocess.run(
        [*base, str(tmp_path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert empty.returncode != 0
    assert "no CDnet-format sequence" in empty.stderr
    write_sequence(tmp_path)
    for extra, message in (
        (["--baseline", "vibe"], "unknown baseline"),
        (["--set", "sensitivity=500"], "sensitivity"),
        (["--set", "nonsense"], "KEY=VALUE"),
        (["--set", "bogus=1"], "bogus: unknown detector setting; choose from absorb_seconds"),
    ):
        bad = subprocess.run(
            [*base, str(tmp_path), *extra], capture_output=True, text=True, timeout=60, check=False
        )
        assert bad.returncode == 2, bad.stderr
        assert message in bad.stderr
        assert "errors.pydantic.dev" not in bad.stderr  # one line, not pydantic's report


@pytest.mark.parametrize(
    ("roi", "message"),
    [
        ("abc def\n", "expected 'first last'"),
        ("900 1000\n", "no frame with ground truth in the scored range 900..1000"),
    ],
)
def test_eval_command_rejects_bad_temporal_roi(tmp_path: Path, roi: str, message: str) -> None:
    seq = write_sequence(tmp_path, n=12)
    (seq / "temporalROI.txt").write_text(roi)
    run = subprocess.run(
        [sys.executable, "-c", "from server.cli import main; main()", "eval", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 1, run.stderr
    assert message in run.stderr
    assert "Traceback" not in run.stderr
    assert run.stdout == ""  # no table of zeros
