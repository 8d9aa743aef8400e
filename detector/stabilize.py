"""Global camera shift from row and column profiles.

Averaging rows and columns turns a 2-D translation into two 1-D shifts of the profiles, and
matching the profiles' first differences ignores gain and offset changes. It costs a few tens of
microseconds at the working size, so it only runs when much of the frame changed at once, and the
caller keeps a shift only if it actually explains the change.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

__all__ = ["estimate_shift"]

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]


def _match(ref: F32, cur: F32, reach: int) -> float:
    """The shift ``s`` with ``cur[x] ~ ref[x - s]`` (sub-pixel, by a parabola through the best
    match and its neighbours)."""
    n = ref.shape[0]
    reach = min(reach, n // 4)
    if reach < 1:
        return 0.0
    tmpl = cur[reach : n - reach].reshape(1, -1)
    err = cv2.matchTemplate(ref.reshape(1, -1), tmpl, cv2.TM_SQDIFF).ravel()
    k = int(np.argmin(err))
    sub = 0.0
    if 0 < k < err.shape[0] - 1:
        left, mid, right = float(err[k - 1]), float(err[k]), float(err[k + 1])
        den = left - 2.0 * mid + right
        if den > 1e-9:
            sub = 0.5 * (left - right) / den
    return float(reach - (k + sub))


def profiles(img: U8) -> tuple[F32, F32]:
    """First differences of the column and row means of ``img``."""
    cols = cv2.reduce(img, 0, cv2.REDUCE_AVG, dtype=cv2.CV_32F).ravel()
    rows = cv2.reduce(img, 1, cv2.REDUCE_AVG, dtype=cv2.CV_32F).ravel()
    return np.diff(cols), np.diff(rows)


def estimate_shift(reference: U8, current: U8, reach: int) -> tuple[float, float]:
    """How far (dx, dy) the image content moved from ``reference`` to ``current``."""
    rc, rr = profiles(reference)
    cc, cr = profiles(current)
    return _match(rc, cc, reach), _match(rr, cr, reach)
