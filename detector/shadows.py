"""Changes that are light, not objects: glare, reflections, foam, smoke, haze, and cast shadows.

Two tests on foreground pixels, both against the background's local contrast (3x3 max - min):

* brighter (or at most slightly darker) without more local contrast than the background had:
  light added to a surface (headlight beams, reflections on a floor, foam, smoke, haze) and not
  an object, which brings edges of its own;
* optionally, darker by a shadow's ratio (0.6..0.88) over a textured surface whose texture
  survives: a cast shadow. On a flat surface the test cannot tell a shadow from a dark object and
  keeps the pixel; on luma alone it still takes parts of dark objects, which is why it is off by
  default (it lowered the measured F on every shared set).
"""

from __future__ import annotations

from typing import cast

import cv2
import numpy as np
import numpy.typing as npt

from detector._cv import K3, cvs

__all__ = ["light_only"]

U8 = npt.NDArray[np.uint8]

LIGHTEST = 0.88
"""Darker than this fraction of the background is not "light only"."""
CONTRAST_SLACK = 4
DARKEST = 0.6
"""Shadows darken the background to between DARKEST and LIGHTEST of its level."""
TEXTURED = 12
"""Background contrast needed to judge whether texture survived."""
KEEP = 0.7
"""A shadow keeps at least this fraction of the background's local contrast."""


def light_only(frame: U8, background: U8, bg_contrast: U8, fg: U8, *, shadows: bool) -> U8:
    """The pixels of ``fg`` (255) whose change looks like light rather than an object."""
    contrast = cv2.morphologyEx(frame, cv2.MORPH_GRADIENT, K3)
    no_new_edges = cvs.compare(contrast, cvs.add(bg_contrast, CONTRAST_SLACK), cv2.CMP_LE)
    # frame >= LIGHTEST * background, computed without leaving 8 bits.
    scaled = cv2.convertScaleAbs(frame, alpha=1.0 / LIGHTEST)
    not_dark = cvs.compare(scaled, background, cv2.CMP_GE)
    out = cv2.bitwise_and(cv2.bitwise_and(fg, no_new_edges), not_dark)
    if shadows:
        lower = cvs.compare(cv2.convertScaleAbs(frame, alpha=1.0 / DARKEST), background, cv2.CMP_GE)
        dim = cv2.bitwise_and(cv2.bitwise_and(fg, cv2.bitwise_not(not_dark)), lower)
        if cv2.countNonZero(dim):
            textured = cvs.compare(bg_contrast, TEXTURED, cv2.CMP_GE)
            kept_texture = cvs.compare(
                cv2.convertScaleAbs(contrast, alpha=1.0 / KEEP), bg_contrast, cv2.CMP_GE
            )
            shade = cv2.bitwise_and(cv2.bitwise_and(dim, textured), kept_texture)
            shade = cv2.bitwise_and(shade, no_new_edges)
            out = cv2.bitwise_or(out, shade)
    return cast(U8, out)
