"""What one call to :meth:`MotionDetector.detect` returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

__all__ = ["Box", "MotionResult", "ZoneResult"]

Box = tuple[int, int, int, int]
"""``(x1, y1, x2, y2)`` in input pixel coordinates, x2/y2 exclusive."""


@dataclass(frozen=True, slots=True)
class ZoneResult:
    """Motion inside one named zone."""

    name: str
    motion: bool
    score: float
    """Fraction of the zone's (unmasked) area in motion, 0..1."""


@dataclass(frozen=True, slots=True)
class MotionResult:
    """The detector's verdict on one frame.

    ``mask`` is at the detector's working scale (same aspect ratio as the input); ``boxes`` are
    in input pixels. ``zones`` maps each zone name to a plain bool so the result serialises to
    JSON directly; ``zone_results`` carries the per-zone scores.
    """

    motion: bool
    boxes: list[Box]
    mask: npt.NDArray[np.uint8]
    score: float
    zones: dict[str, bool] = field(default_factory=dict)
    lighting_change: bool = False
    warming_up: bool = False
    zone_results: dict[str, ZoneResult] = field(default_factory=dict)
