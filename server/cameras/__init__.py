"""Camera ingest: every common camera source, decoded at the decoder's speed limit.

The server core uses :class:`CameraReader` (one per camera), the :class:`Frame`
objects it hands over, its :class:`CameraStatus`, and :class:`SourceError`.
See ``docs/cameras.md``.
"""

from __future__ import annotations

from server.cameras.errors import BadFrame, SourceError
from server.cameras.frame import Frame
from server.cameras.reader import CameraReader, StatusCallback
from server.cameras.status import CameraState, CameraStatus

__all__ = [
    "BadFrame",
    "CameraReader",
    "CameraState",
    "CameraStatus",
    "Frame",
    "SourceError",
    "StatusCallback",
]
