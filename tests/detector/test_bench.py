"""``motionhub bench detector`` as a user runs it (quick mode, procedural frames)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from detector import MotionDetector
from server.bench.detector import SHAPE, FrigateLike, bench_frames


def test_frigate_like_finds_the_moving_cars(tmp_path: Path) -> None:
    frames, source = bench_frames(tmp_path, 40)
    assert "procedural" in source
    frig = FrigateLike(SHAPE)
    ours = MotionDetector(SHAPE)
    found = [(bool(frig.detect(f)), ours.detect(f).motion) for f in frames]
    assert all(o for _, o in found[5:])
    assert any(f for f, _ in found[20:])
    assert all(f.shape == SHAPE and f.dtype == np.uint8 for f in frames)


def test_frigate_as_shipped_differs_only_in_its_blur(tmp_path: Path) -> None:
    frames, _ = bench_frames(tmp_path, 30)
    shipped, lean = FrigateLike(SHAPE, scipy_blur=True), FrigateLike(SHAPE)
    boxes = [(shipped.detect(f), lean.detect(f)) for f in frames]
    assert sum(bool(a) for a, _ in boxes[15:]) >= 10
    assert sum(bool(b) for _, b in boxes[15:]) >= 10
    # Both blurs are the same 3x3 Gaussian (sigma 1), up to rounding (SciPy truncates, OpenCV
    # rounds in fixed point) and the border rule, so only the interior is compared.
    small = cv2.resize(frames[0], (shipped.w, shipped.h), interpolation=cv2.INTER_NEAREST)
    diff = shipped.blur(small).astype(np.int16) - lean.blur(small).astype(np.int16)
    assert np.abs(diff[1:-1, 1:-1]).max() <= 2


def test_bench_command_writes_json_and_markdown(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from server.cli import main; main()",
            "bench",
            "detector",
            "--quick",
            "--json",
            "--out",
            str(out),
            "--datasets",
            str(tmp_path / "none"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    data = json.loads(result.stdout)["detector"]
    for name in ("motionhub", "frigate", "frigate_like", "mog2_full"):
        for mode in ("fresh", "cold"):
            assert data["results"][name][mode]["median_ms"] > 0
    assert data["working_shape"] == [135, 240]
    assert data["target_frigate_ratio"] == pytest.approx(0.95 / 0.25)
    fresh = data["results"]
    assert data["ratios"]["fresh"]["frigate_over_motionhub"] == pytest.approx(
        fresh["frigate"]["fresh"]["median_ms"] / fresh["motionhub"]["fresh"]["median_ms"]
    )
    assert (out / "detector.json").is_file()
    summary = (out / "detector.md").read_text()
    assert "Frigate as shipped / motionhub" in summary
    assert "the target's ratio of 3.8x" in summary
    assert "detector: motionhub (fresh)" in result.stderr
