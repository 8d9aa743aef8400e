"""Overlays fixed in the picture (a timestamp, a camera name, a watermark) while the camera moves.

An overlay is burnt into the frame: while the model follows the scene behind it, the overlay
differs from the model, yet it is not motion. Scene pixels move with the camera and change from
frame to frame (or match the model anyway); a pixel that changed by at most ``FIXED_STEP``
levels on ``FIXED_FRAMES`` consecutive frames of camera motion, on an edge (``FIXED_EDGE``), is
taken for an overlay.
"""

from __future__ import annotations

from typing import cast

import cv2
import numpy as np
import numpy.typing as npt

from detector._cv import K3, cvs

__all__ = ["FIXED_EDGE", "FIXED_FRAMES", "FIXED_STEP", "FixedOverlay"]

U8 = npt.NDArray[np.uint8]

FIXED_STEP = 2
"""Largest frame-to-frame change (grey levels) of a pixel that stays put in the picture."""
FIXED_FRAMES = 3
"""Frames a pixel must stay put while the camera moves before it counts as an overlay."""
FIXED_EDGE = 12
"""Least local contrast (3x3 max - min, grey levels) of an overlay pixel: the strokes of text
or a logo, not the flat inside of an object that moves slowly with the camera."""


class FixedOverlay:
    """Per pixel, the frames in a row it stayed put while the camera moved."""

    def __init__(self) -> None:
        self._counts: U8 | None = None
        """None while the camera is not being followed."""

    def forget(self) -> None:
        """The camera stopped (or the model restarted): what stayed put while it moved says
        nothing about the next move."""
        self._counts = None

    def drop(self, g: U8, prev: U8, fg: U8, count: int) -> tuple[U8, int, U8 | None]:
        """Count, on a frame ``g`` of camera motion after ``prev``, the pixels that stayed put,
        and drop the overlay from the change ``fg`` (of ``count`` pixels). Returns the change
        left, its size, and the overlay (None if there was no change), which the model must
        not learn either. Called only while the camera is being followed, so a still camera
        pays nothing."""
        put = cvs.compare(cv2.absdiff(g, prev), FIXED_STEP, cv2.CMP_LE)
        if self._counts is None:
            counts = put // 255
        else:
            counts = cast(U8, cv2.bitwise_and(cvs.add(self._counts, 1), put))
        self._counts = counts
        if not count:
            return fg, count, None
        overlay = cast(U8, cv2.bitwise_and(fg, cvs.compare(counts, FIXED_FRAMES, cv2.CMP_GE)))
        edges = cv2.morphologyEx(g, cv2.MORPH_GRADIENT, K3)
        overlay = cast(U8, cv2.bitwise_and(overlay, cvs.compare(edges, FIXED_EDGE, cv2.CMP_GE)))
        fg = cast(U8, cv2.subtract(fg, overlay))
        return fg, cv2.countNonZero(fg), overlay
