"""A camera's motion detector, run on the camera's reader thread right after decode.

The reader calls :meth:`DetectorStage.analyse` for each frame it hands over (those the
``detect.fps`` limit lets through). OpenCV releases the GIL, so detection spreads over the
cores together with the decode, and the event loop receives only the small
:class:`Detection` with the frame: it keeps events and delivery, a few microseconds a frame.

The detector is touched by one thread only. The event loop never calls it: a new
configuration (:meth:`DetectorStage.configure`) or a restart of the background
(:meth:`DetectorStage.reset`) is handed over and applied on the reader thread before the
next frame is analysed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from detector import DetectorConfig, MotionDetector, MotionResult

__all__ = ["Analyse", "Detection", "DetectorStage"]

log = logging.getLogger(__name__)

FAILURE_LOG_INTERVAL = 60.0
"""Seconds between two logs of a detection that fails on every frame."""

Analyse = Callable[[npt.NDArray[np.uint8], float], "Detection | None"]
"""``analyse(luma, mono_time)``: what a reader runs on its thread for each frame it hands over."""


@dataclass(frozen=True, slots=True)
class Detection:
    """The detector's verdict on one frame, as handed to the event loop."""

    result: MotionResult
    width: int
    """Width of the analysed luma frame (the boxes are in its pixels)."""
    height: int
    seconds: float
    """Time spent in the detector."""


class DetectorStage:
    """One camera's detector and the hand-over of its configuration.

    :meth:`analyse` runs on the reader thread; :meth:`configure` and :meth:`reset` may be
    called from any thread and take effect before the next frame.
    """

    def __init__(
        self,
        camera: str,
        config: DetectorConfig,
        *,
        enabled: bool = True,
        observe: Callable[[float], None] | None = None,
    ) -> None:
        self.camera = camera
        self._config = config
        self._enabled = enabled
        self._observe = observe
        self._detector: MotionDetector | None = None
        self._lock = threading.Lock()
        self._pending: tuple[DetectorConfig, bool] | None = None
        self._reset = False
        self._failed = 0
        """Frames whose detection failed since that was last logged."""
        self._next_failure_log = 0.0
        """When a failure may be logged again; 0 while detection works."""
        self.thread: str | None = None
        """Name of the thread that runs the detector, recorded when it is built (for
        diagnostics and tests)."""

    @property
    def config(self) -> DetectorConfig:
        """The configuration the detector runs with now (a handed-over one once applied)."""
        return self._config

    def configure(self, config: DetectorConfig, enabled: bool) -> None:
        """Hand over a new configuration; applied before the next frame, keeping the learned
        background (see :meth:`MotionDetector.update_config`)."""
        with self._lock:
            self._pending = (config, enabled)

    def reset(self) -> None:
        """Start the background afresh at the next frame."""
        with self._lock:
            self._reset = True

    def analyse(self, luma: npt.NDArray[np.uint8], mono_time: float) -> Detection | None:
        """Detect motion in ``luma``; ``None`` while detection is disabled or if it failed
        (logged; the background then starts afresh)."""
        if self._pending is not None or self._reset:
            self._take_changes()
        if not self._enabled:
            return None
        h, w = luma.shape[:2]
        detector = self._detector
        try:
            if detector is None or detector.frame_shape != (h, w):
                detector = self._detector = MotionDetector(frame_shape=(h, w), config=self._config)
                self.thread = threading.current_thread().name
            t0 = time.perf_counter()
            result = detector.detect(luma, mono_time)
            seconds = time.perf_counter() - t0
        except Exception:
            # One bad frame or a detector bug must not take the camera down: log, start
            # the background afresh and go on with the next frame.
            self._detector = None
            self._failure()
            return None
        if self._next_failure_log:
            log.info("detection works again", extra={"camera": self.camera})
            self._failed = 0
            self._next_failure_log = 0.0
        if self._observe is not None:
            self._observe(seconds)
        return Detection(result, w, h, seconds)

    def _failure(self) -> None:
        """Log a failed detection (in an ``except`` block): the first at once, with its
        traceback; while every frame fails, once per :data:`FAILURE_LOG_INTERVAL` with the
        count of frames that failed meanwhile."""
        self._failed += 1
        now = time.monotonic()
        if now < self._next_failure_log:
            return
        self._next_failure_log = now + FAILURE_LOG_INTERVAL
        log.exception(
            "detection failed (%d frame(s) since last logged)",
            self._failed,
            extra={"camera": self.camera},
        )
        self._failed = 0

    def _take_changes(self) -> None:
        with self._lock:
            pending, reset = self._pending, self._reset
            self._pending, self._reset = None, False
        if pending is not None:
            config, self._enabled = pending
            if config != self._config:
                self._config = config
                if self._detector is not None:
                    try:
                        self._detector.update_config(config)
                    except Exception:
                        log.exception("detector update failed", extra={"camera": self.camera})
                        self._detector = None
        if reset:
            self._detector = None
