"""Still blobs: ghosts and light on a surface are absorbed at once, parked objects are not.

A blob whose pixels have not changed since the previous frame for a few checks in a row is one
of three things. A ghost: the background there was never seen without change since the model
started (an object stood there in the first frames and has left), or the background has an
object's outline there and the frame does not. A change of light on a surface: the frame keeps
the background's structure. Otherwise a parked object, which stays motion until it has been
still for ``absorb_seconds`` (handled by the learning step).
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from detector._cv import K3, cvs
from detector.background import Background
from detector.blobs import Blob, edge_contrast
from detector.lighting import same_structure

__all__ = ["GHOST_RATIO", "STATIC_CHECKS", "absorb_still"]

U8 = npt.NDArray[np.uint8]

GHOST_RATIO = 0.6
"""A ghost's outline is this much weaker in the frame than in the background, or more."""
STATIC_CHECKS = 3
"""Checks in a row a pixel must stay still before its blob is judged."""


def absorb_still(
    g: U8,
    prev: U8,
    bg: Background,
    fg: U8,
    blobs: list[Blob],
    *,
    counts: U8,
    moved: int,
    unsure: U8 | None,
) -> list[Blob]:
    """Absorb still blobs that are not objects into ``bg`` and clear them from ``fg``; return
    the blobs kept. ``counts`` (per pixel, updated in place) counts checks in a row a pixel of
    ``fg`` stayed within ``moved`` levels of ``prev``. ``unsure`` (non-zero) marks the pixels
    whose background has not yet been confirmed by quiet frames (None: all are confirmed)."""
    moving = cvs.compare(cv2.absdiff(g, prev), moved, cv2.CMP_GT)
    still = cv2.bitwise_and(fg, cv2.bitwise_not(cv2.dilate(moving, K3)))
    cvs.add(counts, 1, dst=counts, mask=still)
    cv2.bitwise_and(counts, still, dst=counts)
    ripe = cvs.compare(counts, STATIC_CHECKS, cv2.CMP_GE)
    if not cv2.countNonZero(ripe):
        return blobs
    kept: list[Blob] = []
    for b in blobs:
        x, y, w, h = b.rect
        roi = (slice(y, y + h), slice(x, x + w))
        if cv2.countNonZero(ripe[roi]) < 0.5 * b.area:
            kept.append(b)
            continue
        # A background never confirmed is a guess from the first frames: an object that was
        # there then and now is still elsewhere, or gone, left it; a parked object stands on
        # background seen without it.
        gone = unsure is not None and cv2.countNonZero(unsure[roi] & fg[roi]) >= 0.5 * b.area
        if not gone:
            frame_edges, bg_edges = edge_contrast(g, bg.u8, b)
            gone = frame_edges < GHOST_RATIO * bg_edges
        if not gone:
            gone = same_structure(g[roi], bg.u8[roi], fg[roi]) is True
        if gone:
            inside = np.zeros((h, w), np.uint8)
            cv2.drawContours(inside, [b.contour], -1, 255, -1, offset=(-x, -y))
            sel = (inside != 0) & (fg[roi] != 0)
            bg.mean[roi][sel] = g[roi][sel]
            fg[roi][sel] = 0
            counts[roi][sel] = 0
        else:
            kept.append(b)
    return kept
