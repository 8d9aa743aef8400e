"""Cast shadows: foreground that is the background, darker by a bounded ratio, same texture.

A shadow dims what is under it by roughly the same factor everywhere, so the frame there is
the background scaled by 0.45..0.88 and its local contrast (3x3 max minus min) is the
background's scaled the same way. A dark object is usually darker than that and brings edges and
texture of its own, which the contrast test catches.
"""

from __future__ import annotations

from typing import cast

import cv2
import numpy as np
import numpy.typing as npt

from detector._cv import K3, cvs

__all__ = ["shadow_mask"]

U8 = npt.NDArray[np.uint8]

DARKEST = 0.45
LIGHTEST = 0.88
CONTRAST_SLACK = 4


def shadow_mask(frame: U8, background: U8, bg_contrast: U8, fg: U8) -> U8:
    """Pixels of ``fg`` that look like cast shadow (255) on ``background``."""
    # frame <= LIGHTEST * bg  and  frame >= DARKEST * bg, without leaving 8 bits.
    upper = cvs.compare(cv2.convertScaleAbs(frame, alpha=1.0 / LIGHTEST), background, cv2.CMP_GE)
    lower = cvs.compare(cv2.convertScaleAbs(frame, alpha=1.0 / DARKEST), background, cv2.CMP_GE)
    dim = cv2.bitwise_and(cv2.bitwise_and(upper, lower), fg)
    if not cv2.countNonZero(dim):
        return cast(U8, dim)
    contrast = cv2.subtract(cv2.dilate(frame, K3), cv2.erode(frame, K3))
    # A shadow does not add contrast: the frame's local contrast stays at or below the
    # background's (plus noise).
    flat = cvs.compare(contrast, cvs.add(bg_contrast, CONTRAST_SLACK), cv2.CMP_LE)
    return cast(U8, cv2.bitwise_and(dim, flat))
