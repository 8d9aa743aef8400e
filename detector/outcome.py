"""Turning a frame's final mask and blobs into the :class:`MotionResult` callers see."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt

from detector.blobs import Blob, merge_rects
from detector.geometry import Scaler
from detector.result import Box, MotionResult, ZoneResult

__all__ = ["make_result"]

U8 = npt.NDArray[np.uint8]


def make_result(
    fg: U8,
    blobs: Sequence[Blob],
    *,
    scaler: Scaler,
    zones: Sequence[tuple[str, U8, int]],
    valid_count: int,
    warming: bool,
    lighting: bool,
) -> MotionResult:
    """Boxes in input pixels (touching boxes merged), the score and per-zone motion.

    While ``warming`` the result reports nothing at all (no boxes, an empty mask, score 0), so
    the mask and scores always agree with ``motion``.
    """
    if warming:
        blobs = ()
        fg = np.zeros_like(fg)
    motion = bool(blobs)
    boxes: list[Box] = []
    if motion:
        rects = merge_rects([b.rect for b in blobs], 2)
        boxes = scaler.to_input_boxes(rects)
    moving = cv2.countNonZero(fg) if blobs else 0
    zres: dict[str, ZoneResult] = {}
    for name, zone_mask, area in zones:
        n = cv2.countNonZero(cv2.bitwise_and(fg, zone_mask)) if moving else 0
        zres[name] = ZoneResult(name, motion and n > 0, n / area)
    return MotionResult(
        motion=motion,
        boxes=boxes,
        mask=fg,
        score=moving / valid_count,
        zones={k: v.motion for k, v in zres.items()},
        lighting_change=lighting,
        warming_up=warming,
        zone_results=zres,
    )
