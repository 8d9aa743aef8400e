"""Global illumination: a tone curve between the frame and the background.

A light switch, an IR/day flip or an exposure step changes almost every pixel, but coherently:
pixels that were equally bright stay equally bright. The joint histogram of (frame level,
background level) therefore has one dominant ridge; its mode per row is a tone curve that is
robust to objects (they are a minority at every level). Comparing the frame after that curve
with the background leaves real objects standing out.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

__all__ = ["ToneCurve", "fit_tone_curve"]

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]

_BITS = 3
_BINS = 256 >> _BITS
_CENTERS = (np.arange(_BINS, dtype=np.float64) + 0.5) * (1 << _BITS) - 0.5
_LEVELS = np.arange(256, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class ToneCurve:
    """Level maps both ways and how far from identity they are.

    ``forward`` maps frame levels to background levels (to compare in the background's light),
    ``inverse`` maps background levels to frame levels (to carry the model into the new light).
    ``change`` is the mean absolute level change over the pixels, ``support`` the fraction of
    pixels in the ridge's histogram cells.
    """

    forward: F32
    inverse: F32
    change: float
    support: float

    def forward_u8(self) -> U8:
        """``forward`` as an 8-bit lookup table."""
        return np.clip(np.rint(self.forward), 0, 255).astype(np.uint8)


def _ridge(hist: npt.NDArray[np.float64], min_count: float) -> tuple[F32, npt.NDArray[np.bool_]]:
    """For each row of ``hist``, the refined column position of its mode; the curve through the
    well-populated rows, made monotonic and interpolated to 256 levels."""
    rows = hist.shape[0]
    mode = np.argmax(hist, axis=1)
    idx = np.clip(mode[:, None] + np.arange(-1, 2)[None, :], 0, rows - 1)
    w = np.take_along_axis(hist, idx, axis=1)
    pos = (w * _CENTERS[idx]).sum(axis=1) / np.maximum(w.sum(axis=1), 1e-9)
    counts = hist.sum(axis=1)
    ok = counts >= min_count
    if ok.sum() < 2:
        return _LEVELS.astype(np.float32), ok
    xs = _CENTERS[ok]
    ys = np.maximum.accumulate(pos[ok])
    return np.interp(_LEVELS, xs, ys).astype(np.float32), ok


def fit_tone_curve(frame: U8, background: U8) -> ToneCurve:
    """Fit the tone curves between ``frame`` and ``background`` (same shape)."""
    joint = cv2.calcHist([frame, background], [0, 1], None, [_BINS, _BINS], [0, 256, 0, 256])
    hist = joint.astype(np.float64)
    n = float(hist.sum())
    min_count = max(8.0, 0.002 * n)
    forward, ok = _ridge(hist, min_count)
    inverse, _ = _ridge(hist.T, min_count)
    counts = hist.sum(axis=1)
    moved = np.abs(np.interp(_CENTERS, _LEVELS, forward) - _CENTERS)
    change = float((counts * moved).sum() / max(n, 1.0))
    on = np.take_along_axis(hist, np.argmax(hist, axis=1)[:, None], axis=1).ravel()
    support = float(on[ok].sum() / max(n, 1.0))
    return ToneCurve(forward, inverse, change, support)


def same_structure(
    frame: U8, background: U8, where: U8 | None = None, min_std: float = 3.0
) -> bool | None:
    """Whether ``frame`` shows ``background``'s structure under other light: True when their
    normalised cross-correlation (over the pixels where ``where`` is non-zero) is high, False
    when it is low, None when there is too little texture (or too much clipping) to tell."""
    sel = where != 0 if where is not None else np.ones(frame.shape, bool)
    if int(np.count_nonzero(sel)) < 4:
        return None
    f = frame[sel].astype(np.float32)
    b = background[sel].astype(np.float32)
    fm = float(f.mean())
    if fm > 245.0 or fm < 10.0:
        return None
    f -= fm
    b -= b.mean()
    sf = float(np.sqrt(np.mean(f * f)))
    sb = float(np.sqrt(np.mean(b * b)))
    if sf < min_std or sb < min_std:
        return None
    ncc = float(np.mean(f * b)) / (sf * sb)
    return ncc > 0.6
