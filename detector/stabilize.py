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

__all__ = ["estimate_shift", "estimate_similarity"]

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]

SIM_CORNERS = 200
"""Corners tracked for a similarity estimate."""
SIM_MIN_POINTS = 12
"""Fewest tracked corners (and inliers) a similarity estimate is made from."""
SIM_INLIERS = 0.5
"""Share of the tracked corners that must agree on one similarity transform."""
SIM_TOLERANCE = 2.0
"""RANSAC inlier distance (working pixels)."""


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


def estimate_similarity(reference: U8, current: U8) -> npt.NDArray[np.float64] | None:
    """The 2 x 3 similarity transform (scale, rotation, translation) taking ``reference`` to
    ``current``, from corners of ``reference`` tracked into ``current`` (pyramidal Lucas-Kanade)
    and a RANSAC fit, or None when too few corners agree on one motion (water, a blank scene).
    Moving objects are outliers of the fit."""
    pts = cv2.goodFeaturesToTrack(
        reference, maxCorners=SIM_CORNERS, qualityLevel=0.01, minDistance=5, blockSize=5
    )
    if pts is None or len(pts) < SIM_MIN_POINTS:
        return None
    moved, status, _ = cv2.calcOpticalFlowPyrLK(
        reference, current, pts, np.empty_like(pts), winSize=(15, 15), maxLevel=2
    )
    ok = status.ravel() == 1
    if int(ok.sum()) < SIM_MIN_POINTS:
        return None
    m, inliers = cv2.estimateAffinePartial2D(
        pts[ok], moved[ok], method=cv2.RANSAC, ransacReprojThreshold=SIM_TOLERANCE
    )
    if m is None or inliers is None:
        return None
    if int(inliers.sum()) < max(SIM_MIN_POINTS, SIM_INLIERS * int(ok.sum())):
        return None
    return np.asarray(m, np.float64)
