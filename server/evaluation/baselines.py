"""The methods an evaluation compares: motionhub's detector and OpenCV's MOG2 and KNN.

Each method is a factory taking the frame shape and returning a per-frame callable that gives a
foreground mask (any scale, foreground > 0) and the frame's alarm decision. The baselines get the
same luma frames as motionhub and a reasonable post-processing: shadow pixels (127) dropped, a
5x5 median filter, and an alarm when a blob reaches the same minimum area motionhub uses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import cv2
import numpy as np
import numpy.typing as npt

from detector import DetectorConfig, MotionDetector

__all__ = ["BASELINES", "FrameFn", "MethodFactory", "motionhub_method", "opencv_method"]

U8 = npt.NDArray[np.uint8]
FrameFn = Callable[[U8], tuple[U8, bool]]
MethodFactory = Callable[[tuple[int, int]], FrameFn]


def motionhub_method(config: DetectorConfig | None = None) -> MethodFactory:
    """motionhub's detector with ``config`` (defaults when None)."""

    def start(shape: tuple[int, int]) -> FrameFn:
        det = MotionDetector(shape, config)

        def run(luma: U8) -> tuple[U8, bool]:
            r = det.detect(luma)
            return r.mask, r.motion

        return run

    return start


def _postprocess(raw: U8, min_area_px: float) -> tuple[U8, bool]:
    _, fg = cv2.threshold(raw, 200, 255, cv2.THRESH_BINARY)  # drop shadows (127)
    fg = cv2.medianBlur(fg, 5)
    contours, _ = cv2.findContours(fg, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    alarm = any(cv2.contourArea(c) >= min_area_px for c in contours)
    return cast(U8, fg), alarm


def opencv_method(kind: str) -> MethodFactory:
    """OpenCV's ``mog2`` or ``knn`` subtractor with default parameters and shadow detection."""
    if kind not in ("mog2", "knn"):
        raise ValueError(f"unknown baseline {kind!r}; choose from mog2, knn")
    min_area = DetectorConfig().min_area

    def start(shape: tuple[int, int]) -> FrameFn:
        sub = (
            cv2.createBackgroundSubtractorMOG2(detectShadows=True)
            if kind == "mog2"
            else cv2.createBackgroundSubtractorKNN(detectShadows=True)
        )
        min_px = max(1.0, min_area * shape[0] * shape[1])

        def run(luma: U8) -> tuple[U8, bool]:
            return _postprocess(cast(U8, sub.apply(luma)), min_px)

        return run

    return start


BASELINES: dict[str, Callable[[], MethodFactory]] = {
    "mog2": lambda: opencv_method("mog2"),
    "knn": lambda: opencv_method("knn"),
}
