"""A camera's health as people and the API see it, kept up to date from the reader thread."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["CameraState", "CameraStatus", "StatusTracker"]

CameraState = Literal["starting", "online", "offline"]

_FPS_WINDOW = 1.0  # seconds per rate sample
_FPS_STALE = 2.5  # no frame for this long reads as 0 fps


@dataclass(frozen=True, slots=True)
class CameraStatus:
    """A consistent snapshot of one camera's state and counters."""

    camera: str
    state: CameraState
    """``starting`` until the first frame or failure, then ``online`` or ``offline``."""
    since: float
    """Wall time (``time.time()``) of the last change of ``state``."""
    kind: str | None = None
    """The source kind in use (``rtsp``, ``mjpeg``, ``snapshot``, ``file``, ``v4l2``)."""
    fps: float = 0.0
    """Frames decoded per second, measured over the last seconds."""
    frames: int = 0
    """Frames decoded since the reader started."""
    dropped: int = 0
    """Frames handed over but replaced by a newer one before the pipeline took them."""
    decode_errors: int = 0
    """Corrupt or truncated frames (or runs of garbage bytes) skipped."""
    reconnects: int = 0
    """Times the camera came back online after being lost."""
    last_error: str | None = None
    """The most recent problem, short and free of credentials (kept after recovery)."""
    last_error_at: float | None = None
    last_frame_at: float | None = None
    width: int | None = None
    height: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready fields."""
        return dataclasses.asdict(self)


class StatusTracker:
    """Thread-safe counters behind :class:`CameraStatus`.

    Counting a frame only bumps plain attributes under a lock; the immutable
    :class:`CameraStatus` is built when someone asks. ``notify`` is called (outside
    the lock, from whichever thread made the change) with a fresh snapshot whenever
    ``state`` or ``last_error`` changes.
    """

    def __init__(self, camera: str, notify: Callable[[CameraStatus], None]) -> None:
        self._lock = threading.Lock()
        self._notify = notify
        self._camera = camera
        self._state: CameraState = "starting"
        self._since = time.time()
        self._kind: str | None = None
        self._frames = 0
        self._dropped = 0
        self._decode_errors = 0
        self._reconnects = 0
        self._last_error: str | None = None
        self._last_error_at: float | None = None
        self._last_frame_at: float | None = None
        self._size: tuple[int, int] | None = None
        self._ever_online = False
        self._window_start = 0.0
        self._window_frames = 0
        self._fps = 0.0
        self._last_frame_mono: float | None = None

    def snapshot(self) -> CameraStatus:
        """The current status (fps reads 0 once frames have stopped)."""
        with self._lock:
            return self._snapshot_locked()

    def _snapshot_locked(self) -> CameraStatus:
        last = self._last_frame_mono
        fresh = last is not None and time.monotonic() - last <= _FPS_STALE
        return CameraStatus(
            camera=self._camera,
            state=self._state,
            since=self._since,
            kind=self._kind,
            fps=round(self._fps, 2) if fresh else 0.0,
            frames=self._frames,
            dropped=self._dropped,
            decode_errors=self._decode_errors,
            reconnects=self._reconnects,
            last_error=self._last_error,
            last_error_at=self._last_error_at,
            last_frame_at=self._last_frame_at,
            width=self._size[0] if self._size else None,
            height=self._size[1] if self._size else None,
        )

    def set_kind(self, kind: str) -> None:
        """Record the source kind in use."""
        with self._lock:
            self._kind = kind

    def frame(self, mono: float, wall: float, width: int, height: int) -> None:
        """Count a decoded frame; the first one after (re)connecting turns the camera online."""
        with self._lock:
            if self._last_frame_mono is None or mono - self._window_start > 4 * _FPS_WINDOW:
                self._window_start, self._window_frames = mono, 0
            self._last_frame_mono = mono
            self._last_frame_at = wall
            self._frames += 1
            self._window_frames += 1
            elapsed = mono - self._window_start
            if elapsed >= _FPS_WINDOW:
                rate = (self._window_frames - 1) / elapsed
                self._fps = rate if self._fps == 0 else 0.5 * self._fps + 0.5 * rate
                self._window_start, self._window_frames = mono, 1
            self._size = (width, height)
            if self._state == "online":
                return
            self._state, self._since = "online", wall
            if self._ever_online:
                self._reconnects += 1
            self._ever_online = True
            snap = self._snapshot_locked()
        self._notify(snap)

    def offline(self, reason: str) -> None:
        """The source failed or stopped delivering; ``reason`` must be redacted already."""
        now = time.time()
        with self._lock:
            changed = self._state != "offline" or self._last_error != reason
            if self._state != "offline":
                self._state, self._since = "offline", now
            self._last_error, self._last_error_at = reason, now
            self._fps = 0.0
            self._last_frame_mono = None
            snap = self._snapshot_locked()
        if changed:
            self._notify(snap)

    def bad_frame(self, reason: str) -> None:
        """A frame (or a run of garbage) was skipped; the camera stays in its state."""
        now = time.time()
        with self._lock:
            changed = self._last_error != reason
            self._decode_errors += 1
            self._last_error, self._last_error_at = reason, now
            snap = self._snapshot_locked()
        if changed:
            self._notify(snap)

    def add_dropped(self, count: int = 1) -> None:
        """Count frames the pipeline never took."""
        with self._lock:
            self._dropped += count
