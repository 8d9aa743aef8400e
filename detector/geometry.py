"""Working-size arithmetic, polygon rasterisation and box scaling."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import cv2
import numpy as np
import numpy.typing as npt

from detector._cv import cvs

__all__ = ["MIN_SIDE", "Scaler", "fill_polygons", "working_scaler"]

MIN_SIDE = 8
"""Fewest rows and columns of a frame, and of the working grid it is shrunk to."""

Mask = npt.NDArray[np.uint8]


@dataclass(frozen=True, slots=True)
class Scaler:
    """How an input frame maps onto the working grid.

    ``step`` > 0 means plain integer decimation (``luma[off::step, off::step]``), which reads a
    small fraction of a large frame; ``step == 0`` means an area resize, used for small inputs
    whose ratio to the working size is not an integer.
    """

    in_shape: tuple[int, int]
    work_shape: tuple[int, int]
    step: int

    def shrink(self, luma: Mask) -> Mask:
        """Return ``luma`` on the working grid as a new contiguous array."""
        hh, ww = self.work_shape
        if self.step == 1:
            return np.ascontiguousarray(luma)
        if self.step > 1:
            off = self.step // 2
            return np.ascontiguousarray(luma[off :: self.step, off :: self.step][:hh, :ww])
        src = luma if luma.strides[1] == 1 else np.ascontiguousarray(luma)
        # Below a 2:1 ratio bilinear sampling still touches every input pixel, and OpenCV's
        # area resize is ten times slower at fractional ratios.
        return cast(Mask, cv2.resize(src, (ww, hh), interpolation=cv2.INTER_LINEAR))

    @property
    def sx(self) -> float:
        """Input pixels per working pixel, horizontally."""
        return self.in_shape[1] / self.work_shape[1]

    @property
    def sy(self) -> float:
        """Input pixels per working pixel, vertically."""
        return self.in_shape[0] / self.work_shape[0]

    def to_input_box(self, x: int, y: int, w: int, h: int) -> tuple[int, int, int, int]:
        """Scale a working-grid rectangle to an input-pixel ``(x1, y1, x2, y2)`` box."""
        return self.to_input_boxes([(x, y, w, h)])[0]

    def to_input_boxes(
        self, rects: Sequence[tuple[int, int, int, int]]
    ) -> list[tuple[int, int, int, int]]:
        """:meth:`to_input_box` for each of ``rects`` (which lie inside the working grid)."""
        ih, iw = self.in_shape
        sx, sy = self.sx, self.sy
        floor, ceil = math.floor, math.ceil
        # x, w >= 0, so only the rounding up can pass the frame's edge.
        return [
            (
                min(iw, floor(x * sx)),
                min(ih, floor(y * sy)),
                min(iw, ceil((x + w) * sx)),
                min(ih, ceil((y + h) * sy)),
            )
            for x, y, w, h in rects
        ]


def working_scaler(in_shape: tuple[int, int], max_width: int, max_height: int) -> Scaler:
    """Pick the working size for ``in_shape`` (h, w) that fits ``max_width`` x ``max_height``.

    Large frames use the smallest integer step that fits, since decimating by slicing is far
    cheaper than any resize at 1080p and the blur that follows removes its aliasing. Small frames
    that need a fractional ratio below 2 are resized bilinearly (cheap at that size).
    """
    h, w = in_shape
    if h < 1 or w < 1:
        raise ValueError(f"frame shape must be positive, got {in_shape}")
    ratio = max(w / max_width, h / max_height, 1.0)
    step = math.ceil(ratio - 1e-9)
    if step == 1:
        return Scaler(in_shape, (h, w), 1)
    exact = abs(ratio - round(ratio)) < 1e-6
    if min(h, w) < MIN_SIDE * step:
        # So thin a frame that slicing would leave too few rows (or columns) for the detector's
        # 8 x 6 grid and its 3x3 filters: resize, keeping MIN_SIDE on the short side (the
        # working grid is then stretched along it; boxes scale back per axis).
        return Scaler(
            in_shape, (max(MIN_SIDE, round(h / ratio)), max(MIN_SIDE, round(w / ratio))), 0
        )
    if exact or step >= 3:
        # A step of 3+ loses little against the exact ratio, and slicing is much cheaper.
        return Scaler(in_shape, (h // step, w // step), step)
    scale = 1.0 / ratio
    return Scaler(in_shape, (max(1, round(h * scale)), max(1, round(w * scale))), 0)


SUBPIXELS = (8, 4, 2)
"""Polygons are drawn on a grid this many times finer (the finest whose size stays within
FINE_PIXELS), then each pixel takes the majority. Even, so an edge never gives the pixel it
crosses to both sides."""
FINE_PIXELS = 1 << 22


def fill_polygons(
    shape: tuple[int, int], polygons: Sequence[Sequence[tuple[float, float]]], value: int = 255
) -> Mask:
    """Rasterise relative-coordinate polygons onto a ``shape`` (h, w) mask (``value`` inside).

    A pixel is inside when more than half of it is covered, so polygons sharing an edge (a
    frame split into zones) share no pixel. Polygons too small or thin to cover half a pixel
    anywhere keep every pixel they touch.
    """
    h, w = shape
    out = np.zeros((h, w), np.uint8)
    if not polygons:
        return out
    n = next((k for k in SUBPIXELS if h * w * k * k <= FINE_PIXELS), SUBPIXELS[-1])
    fine = np.zeros((h * n, w * n), np.uint8)
    pts = [
        np.round(np.asarray(p, np.float64) * (w * n, h * n) - 0.5)
        .astype(np.int32)
        .reshape(-1, 1, 2)
        for p in polygons
    ]
    cv2.fillPoly(fine, pts, 255)
    cover = cv2.resize(fine, (w, h), interpolation=cv2.INTER_AREA)
    # 129 is just above a half-covered pixel's 127.5 (rounded to 128).
    inside = cvs.compare(cover, 129, cv2.CMP_GT)
    if not cv2.countNonZero(inside):
        inside = cvs.compare(cover, 0, cv2.CMP_GT)
    out[inside != 0] = value
    return out
