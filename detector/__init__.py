"""motionhub's motion core: pure NumPy/OpenCV, luma frames in, motion results out.

>>> from detector import MotionDetector, DetectorConfig
>>> det = MotionDetector(frame_shape=(1080, 1920), config=DetectorConfig())
>>> result = det.detect(luma)  # doctest: +SKIP
"""

from __future__ import annotations

from detector.config import DetectorConfig, DetectorTuning, Polygon, Zone
from detector.core import MotionDetector
from detector.result import Box, MotionResult, ZoneResult

__all__ = [
    "Box",
    "DetectorConfig",
    "DetectorTuning",
    "MotionDetector",
    "MotionResult",
    "Polygon",
    "Zone",
    "ZoneResult",
]
