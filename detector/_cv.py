"""Typed access to the OpenCV calls whose stubs reject forms OpenCV accepts."""

from __future__ import annotations

from typing import Any, cast

import cv2
import numpy as np
import numpy.typing as npt

__all__ = ["K3", "cvs"]

K3: npt.NDArray[np.uint8] = np.ones((3, 3), np.uint8)
"""The 3x3 structuring element (what ``None`` means to OpenCV's morphology)."""

cvs = cast(Any, cv2)
"""OpenCV with scalar operands (``cv2.add(img, 1)``, ``cv2.compare(img, 5, op)``), which the
bundled stubs do not describe."""
