"""``motionhub bench detector`` as a user runs it (quick mode, procedural frames)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

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
    for name in ("motionhub", "frigate_like", "mog2_full"):
        for mode in ("fresh", "cold"):
            assert data["results"][name][mode]["median_ms"] > 0
    assert data["working_shape"] == [135, 240]
    assert (out / "detector.json").is_file()
    assert "Frigate-like / motionhub" in (out / "detector.md").read_text()
    assert "detector: motionhub (fresh)" in result.stderr
