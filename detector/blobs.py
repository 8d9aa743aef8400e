"""From a raw foreground mask to blobs and boxes, and telling a ghost from a parked object."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import cv2
import numpy as np
import numpy.typing as npt

from detector._cv import K3

__all__ = ["Blob", "drop_faint", "edge_contrast", "find_blobs", "merge_rects"]

U8 = npt.NDArray[np.uint8]
Rect = tuple[int, int, int, int]
Contour = npt.NDArray[np.int32]


@dataclass(frozen=True, slots=True)
class Blob:
    """A connected group of foreground pixels on the working grid: its outline, ``(x, y, w, h)``
    and approximate pixel area."""

    contour: Contour
    rect: Rect
    area: float


def find_blobs(fg: U8, roi: tuple[slice, slice], min_area: float) -> list[Blob]:
    """Find the blobs of ``fg`` (already cleaned of specks, empty outside ``roi``), drop those
    smaller than ``min_area`` working pixels from the list and from the mask (``fg`` is
    modified in place)."""
    ys, xs = roi
    contours, _ = cv2.findContours(
        fg[roi], cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE, offset=(xs.start or 0, ys.start or 0)
    )
    kept: list[Blob] = []
    dropped = []
    for c in contours:
        # Outline area plus half the perimeter approximates the pixel count without counting.
        area = cv2.contourArea(c) + 0.5 * cv2.arcLength(c, True) + 1.0
        if area >= min_area:
            x, y, w, h = cv2.boundingRect(c)
            kept.append(Blob(cast(Contour, c), (x, y, w, h), area))
        else:
            dropped.append(c)
    if dropped:
        cv2.drawContours(fg, dropped, -1, 0, -1)
    return kept


def drop_faint(
    blobs: list[Blob],
    fg: U8,
    frame: U8,
    envelope: tuple[U8, U8],
    *,
    thr: U8,
    noise: U8,
    dynamic: float = 1.5,
    core: float = 3.0,
    seeds: int = 3,
) -> list[Blob]:
    """Drop the blobs over a moving background that have no core of strong change.

    Where the background itself moves (water, smoke, leaves: a mean noise level of at least
    ``dynamic`` over the blob's rectangle), change hovers around the threshold; an object there
    still brings at least ``seeds`` pixels that lie outside the background's ``envelope`` (hi,
    lo) by more than ``core`` times their threshold ``thr``. Dropped blobs are cleared from
    ``fg`` in place.
    """
    hi, lo = envelope
    kept: list[Blob] = []
    dropped = []
    for b in blobs:
        x, y, w, h = b.rect
        roi = (slice(y, y + h), slice(x, x + w))
        if cv2.mean(noise[roi])[0] < dynamic:
            kept.append(b)
            continue
        reach = cv2.convertScaleAbs(thr[roi], alpha=core)
        within = cv2.inRange(frame[roi], cv2.subtract(lo[roi], reach), cv2.add(hi[roi], reach))
        if cv2.countNonZero(cv2.subtract(fg[roi], within)) >= seeds:
            kept.append(b)
        else:
            dropped.append(b.contour)
    if dropped:
        cv2.drawContours(fg, dropped, -1, 0, -1)
    return kept


def merge_rects(rects: list[Rect], gap: int) -> list[Rect]:
    """Merge rectangles that overlap or lie within ``gap`` pixels of each other."""
    boxes = [(x, y, x + w, y + h) for x, y, w, h in rects]
    merged = True
    while merged and len(boxes) > 1:
        merged = False
        out: list[tuple[int, int, int, int]] = []
        for b in boxes:
            for i, o in enumerate(out):
                if (
                    b[0] <= o[2] + gap
                    and o[0] <= b[2] + gap
                    and b[1] <= o[3] + gap
                    and o[1] <= b[3] + gap
                ):
                    out[i] = (min(b[0], o[0]), min(b[1], o[1]), max(b[2], o[2]), max(b[3], o[3]))
                    merged = True
                    break
            else:
                out.append(b)
        boxes = out
    return [(x1, y1, x2 - x1, y2 - y1) for x1, y1, x2, y2 in boxes]


def edge_contrast(frame: U8, background: U8, blob: Blob) -> tuple[float, float]:
    """Mean edge strength along the blob's outline in the frame and in the background.

    A ghost (background revealed where an object stood when the model was learned) has its
    outline in the background but not in the frame; a parked object the other way round.
    """
    x, y, w, h = blob.rect
    fh, fw = frame.shape
    x0, y0 = max(0, x - 1), max(0, y - 1)
    x1, y1 = min(fw, x + w + 1), min(fh, y + h + 1)
    ef = cv2.morphologyEx(frame[y0:y1, x0:x1], cv2.MORPH_GRADIENT, K3)
    eb = cv2.morphologyEx(background[y0:y1, x0:x1], cv2.MORPH_GRADIENT, K3)
    pts = blob.contour.reshape(-1, 2)
    px = pts[:, 0] - x0
    py = pts[:, 1] - y0
    return float(np.mean(ef[py, px])), float(np.mean(eb[py, px]))
