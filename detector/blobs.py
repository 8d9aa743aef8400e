"""From a raw foreground mask to blobs and boxes, and telling a ghost from a parked object."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import cv2
import numpy as np
import numpy.typing as npt

from detector._cv import K3

__all__ = ["Blob", "Contour", "drop_faint", "edge_contrast", "find_blobs", "merge_rects"]

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
    reported: U8 | None = None,
    dynamic: float = 1.2,
    texture: float = 1.5,
    core: float = 3.0,
    seeds: int = 3,
    share: float = 0.2,
    persist: float = 0.7,
) -> tuple[list[Blob], list[Contour]]:
    """Drop the blobs over a moving background that have no core of strong change.

    Where the background itself moves (water, smoke, leaves: a mean noise level of at least
    ``dynamic`` over the blob's rectangle), change hovers around the threshold; an object there
    brings pixels that lie outside the background's ``envelope`` (hi, lo) by more than ``core``
    times their threshold ``thr``, and they make at least ``share`` of its area. A blob with a
    smaller core is dropped unless ``persist`` of the changed pixels in its rectangle were in
    ``reported`` (the previous frame's mask: an object already reported stays reported while its
    contrast fades). Dropped blobs are cleared from ``fg`` in place.

    Returns the kept blobs and the outlines of the dropped ones the caller should not learn: a
    thin core is also what an object over water or smoke shows on some frames, and left out of
    the model it is found again on the next. Only a blob with fewer than ``seeds`` strong pixels
    over a background noisier than ``texture`` is plain texture, dropped and learned.
    """
    hi, lo = envelope
    kept: list[Blob] = []
    dropped = []
    held: list[Contour] = []
    for b in blobs:
        x, y, w, h = b.rect
        roi = (slice(y, y + h), slice(x, x + w))
        level = cv2.mean(noise[roi])[0]
        if level < dynamic:
            kept.append(b)
            continue
        reach = cv2.convertScaleAbs(thr[roi], alpha=core)
        within = cv2.inRange(frame[roi], cv2.subtract(lo[roi], reach), cv2.add(hi[roi], reach))
        strong = cv2.countNonZero(cv2.subtract(fg[roi], within))
        if strong < seeds and level >= texture:
            dropped.append(b.contour)
        elif strong >= share * b.area or _persists(fg[roi], reported, roi, persist):
            kept.append(b)
        else:
            dropped.append(b.contour)
            held.append(b.contour)
    if dropped:
        cv2.drawContours(fg, dropped, -1, 0, -1)
    return kept, held


def _persists(fg: U8, reported: U8 | None, roi: tuple[slice, slice], persist: float) -> bool:
    """Whether at least ``persist`` of the changed pixels ``fg`` (a rectangle ``roi`` of the
    frame) were in the ``reported`` mask."""
    if reported is None:
        return False
    both = cv2.countNonZero(cv2.bitwise_and(fg, reported[roi]))
    return both >= persist * cv2.countNonZero(fg)


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
