"""The detector stage: detection on the reader's thread, configuration handed over to it."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest

from detector import DetectorConfig
from server.detection import Detection, DetectorStage

H, W = 90, 160


def frames(n: int, start: int = 0) -> list[np.ndarray]:
    """A still scene with a bright square sliding across it."""
    out = []
    for i in range(start, start + n):
        f = np.full((H, W), 60, np.uint8)
        x = 10 + (i * 4) % (W - 40)
        f[30:60, x : x + 30] = 220
        out.append(f)
    return out


def on_thread(name: str, stage: DetectorStage, luma: list[np.ndarray], t0: float) -> list[Any]:
    """Run ``stage.analyse`` over ``luma`` on a thread called ``name`` (like a reader)."""
    results: list[Any] = []

    def run() -> None:
        for i, f in enumerate(luma):
            results.append(stage.analyse(f, t0 + i / 10))

    thread = threading.Thread(target=run, name=name)
    thread.start()
    thread.join()
    return results


def test_detects_on_the_calling_thread_and_reports_the_frame_size() -> None:
    seen: list[float] = []
    stage = DetectorStage("cam", DetectorConfig(), observe=seen.append)
    results = on_thread("camera-cam", stage, frames(40), 0.0)
    assert all(isinstance(r, Detection) for r in results)
    assert stage.thread == "camera-cam"
    assert (results[-1].width, results[-1].height) == (W, H)
    assert len(seen) == 40
    assert any(r.result.motion for r in results[20:])


def test_a_new_config_applies_before_the_next_frame_and_keeps_the_background() -> None:
    stage = DetectorStage("cam", DetectorConfig(threshold=20))
    on_thread("camera-cam", stage, frames(30), 0.0)
    background = stage._detector
    assert background is not None

    changed = DetectorConfig(threshold=45)
    stage.configure(changed, enabled=True)  # from the event loop's thread
    assert stage.config.threshold == 20  # not yet: the reader applies it
    [result] = on_thread("camera-cam", stage, frames(1, 30), 3.0)
    assert isinstance(result, Detection)
    assert stage.config == changed
    assert stage._detector is background  # updated in place, not rebuilt
    assert background.config == changed


def test_disabled_detection_hands_over_nothing_until_enabled_again() -> None:
    stage = DetectorStage("cam", DetectorConfig())
    stage.configure(DetectorConfig(), enabled=False)
    assert on_thread("camera-cam", stage, frames(3), 0.0) == [None, None, None]
    stage.configure(DetectorConfig(), enabled=True)
    assert all(isinstance(r, Detection) for r in on_thread("camera-cam", stage, frames(3), 1.0))


def test_reset_starts_the_background_afresh_at_the_next_frame() -> None:
    stage = DetectorStage("cam", DetectorConfig())
    on_thread("camera-cam", stage, frames(5), 0.0)
    first = stage._detector
    stage.reset()
    on_thread("camera-cam", stage, frames(1, 5), 1.0)
    assert stage._detector is not None
    assert stage._detector is not first


def test_a_failing_frame_is_logged_and_detection_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    stage = DetectorStage("cam", DetectorConfig())
    on_thread("camera-cam", stage, frames(3), 0.0)
    bad = np.zeros((H, W, 3), np.uint8)  # colour, where the detector takes luma
    with caplog.at_level("ERROR"):
        [result] = on_thread("camera-cam", stage, [bad[:, :, :2]], 1.0)
    assert result is None
    assert "detection failed" in caplog.text
    assert all(isinstance(r, Detection) for r in on_thread("camera-cam", stage, frames(3), 2.0))


def test_a_detection_failing_on_every_frame_is_logged_once_until_it_works_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stage = DetectorStage("cam", DetectorConfig())
    on_thread("camera-cam", stage, frames(3), 0.0)
    bad = np.zeros((H, W, 2), np.uint8)  # not a luma plane: every such frame fails
    with caplog.at_level("INFO", logger="server.detection"):
        assert on_thread("camera-cam", stage, [bad] * 30, 1.0) == [None] * 30
        failed = [r for r in caplog.records if "detection failed" in r.getMessage()]
        assert len(failed) == 1
        assert failed[0].exc_info is not None  # the first one with its traceback
        assert all(isinstance(r, Detection) for r in on_thread("camera-cam", stage, frames(2), 5.0))
        assert "detection works again" in caplog.text
        # A new failure after the recovery is logged at once.
        on_thread("camera-cam", stage, [bad], 6.0)
        failed = [r for r in caplog.records if "detection failed" in r.getMessage()]
        assert len(failed) == 2
