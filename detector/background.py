"""The adaptive background: a per-pixel running mean, a noise level, and a +-1 pixel envelope.

The comparison is against the envelope (the 3x3 minimum and maximum of the background) rather
than the background itself, so sub-pixel camera jitter, a residual shift after stabilisation and
the flicker of fine texture do not count as change, while a real object still does.
"""

from __future__ import annotations

from typing import cast

import cv2
import numpy as np
import numpy.typing as npt

from detector._cv import K3, cvs

__all__ = ["Background", "shift_into"]

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]


def shift_into(
    dst: npt.NDArray[np.generic], src: npt.NDArray[np.generic], dx: int, dy: int
) -> None:
    """``dst[y, x] = src[y - dy, x - dx]`` where that is inside ``src``; the rest of ``dst`` is
    left as it was."""
    h, w = src.shape
    if abs(dx) >= w or abs(dy) >= h:
        return
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    dst[yd, xd] = src[ys, xs]


class Background:
    """Running mean of the scene without moving objects, and a per-pixel noise level.

    ``noise`` follows the median of each pixel's distance to the envelope with a sigma-delta
    filter (one level up or down per update), which ignores the occasional passing object but
    rises over water, leaves and flicker.
    """

    def __init__(self, first: U8) -> None:
        self.mean: F32 = first.astype(np.float32)
        self.noise: U8 = np.zeros(first.shape, np.uint8)
        self.u8: U8 = first
        self.hi: U8 = first
        self.lo: U8 = first
        self.refresh()

    def refresh(self) -> None:
        """Recompute the 8-bit copy and the envelope after the mean changed."""
        self.u8 = cast(U8, cv2.convertScaleAbs(self.mean))
        self.hi = cast(U8, cv2.dilate(self.u8, K3))
        self.lo = cast(U8, cv2.erode(self.u8, K3))

    def distance(self, frame: U8, hi: U8 | None = None, lo: U8 | None = None) -> U8:
        """How far each pixel lies outside the envelope (0 inside it)."""
        above = cv2.subtract(frame, self.hi if hi is None else hi)
        below = cv2.subtract(self.lo if lo is None else lo, frame)
        return cast(U8, cv2.max(above, below))

    def count_beyond(
        self,
        frame: U8,
        thr: U8 | int,
        valid: U8 | None,
        hi: U8 | None = None,
        lo: U8 | None = None,
    ) -> int:
        """How many pixels of ``frame`` lie outside the envelope (or ``hi``, ``lo``) by more
        than ``thr`` (per pixel or one level), within ``valid`` (everywhere when None)."""
        fg = cvs.compare(self.distance(frame, hi, lo), thr, cv2.CMP_GT)
        if valid is not None:
            fg = cv2.bitwise_and(fg, valid)
        return cv2.countNonZero(fg)

    def learn(self, frame: U8, alpha: float, where: U8 | None) -> None:
        """Blend ``frame`` into the mean at rate ``alpha`` where ``where`` is non-zero (or
        everywhere when None)."""
        cv2.accumulateWeighted(frame, self.mean, alpha, mask=where)

    def learn_noise(self, distance: U8, where: U8 | None) -> None:
        """One sigma-delta step of the noise level towards ``distance``."""
        up = cv2.compare(distance, self.noise, cv2.CMP_GT)
        down = cv2.compare(distance, self.noise, cv2.CMP_LT)
        if where is not None:
            up = cv2.bitwise_and(up, where)
            down = cv2.bitwise_and(down, where)
        cvs.add(self.noise, 1, dst=self.noise, mask=up)
        cvs.subtract(self.noise, 1, dst=self.noise, mask=down)

    def adopt(self, frame: U8, where: U8) -> None:
        """Take ``frame`` as the background where ``where`` is non-zero."""
        np.copyto(self.mean, frame, where=where != 0)

    def shifted_envelope(self, dx: int, dy: int) -> tuple[U8, U8]:
        """The envelope moved by whole pixels, with cells that left the frame set to "anything
        goes" (hi = 255, lo = 0) so they never count as change."""
        hi = np.full_like(self.hi, 255)
        lo = np.zeros_like(self.lo)
        shift_into(hi, self.hi, dx, dy)
        shift_into(lo, self.lo, dx, dy)
        return hi, lo

    def shift(self, dx: int, dy: int, frame: U8) -> None:
        """Move the model by whole pixels to follow the camera; cells that came into view take
        ``frame``."""
        mean = frame.astype(np.float32)
        shift_into(mean, self.mean, dx, dy)
        noise = np.zeros_like(self.noise)
        shift_into(noise, self.noise, dx, dy)
        self.mean, self.noise = mean, noise
        self.refresh()

    def _seen(self, m: npt.NDArray[np.float64]) -> U8:
        """Where the model warped by ``m`` has a source pixel (255), not a newly exposed one."""
        h, w = self.u8.shape
        ones = np.full((h, w), 255, np.uint8)
        return cast(U8, cv2.warpAffine(ones, m, (w, h), flags=cv2.INTER_NEAREST, borderValue=0))

    def warped_envelope(self, m: npt.NDArray[np.float64]) -> tuple[U8, U8, U8]:
        """The envelope of the model warped by the 2 x 3 transform ``m``, with cells that came
        into view set to "anything goes" (hi = 255, lo = 0), and where the warped model has a
        source pixel (255; see :meth:`warp`)."""
        h, w = self.u8.shape
        u8 = cv2.warpAffine(
            self.u8, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        seen = self._seen(m)
        hi = cast(U8, cv2.bitwise_or(cv2.dilate(u8, K3), cv2.bitwise_not(seen)))
        lo = cast(U8, cv2.bitwise_and(cv2.erode(u8, K3), seen))
        return hi, lo, seen

    def warp(self, m: npt.NDArray[np.float64], frame: U8, seen: U8) -> None:
        """Carry the model through the camera's 2 x 3 similarity ``m`` (zoom, rotation, pan);
        cells that came into view (0 in ``seen``, from :meth:`warped_envelope` of the same
        ``m``) take ``frame`` and no noise."""
        h, w = self.u8.shape
        mean = cv2.warpAffine(
            self.mean, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        new = frame.astype(np.float32)
        np.copyto(new, mean, where=seen != 0)
        noise = cv2.warpAffine(self.noise, m, (w, h), flags=cv2.INTER_NEAREST, borderValue=0)
        self.mean, self.noise = new, cast(U8, noise)
        self.refresh()

    def scale(self, gain: float) -> None:
        """Multiply the model by a global gain."""
        self.mean *= np.float32(gain)
        self.refresh()

    def remap(self, curve: F32) -> None:
        """Carry the model into new lighting through a tone curve (old level -> new level)."""
        levels = np.arange(256, dtype=np.float32)
        self.mean = np.interp(self.mean, levels, curve).astype(np.float32)
        self.refresh()
