"""The camera's main (full-quality) stream, opened only while colour frames are wanted.

When a camera has a separate ``detect_url``, detection reads the low-resolution
substream and the main ``url`` is not touched at all, until a snapshot or live
view asks for colour. Then a second pump opens the main stream, keeps only its
newest frame, and closes it again after a quiet spell, so an idle camera costs
one decoder, not two.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import numpy as np
from numpy.typing import NDArray

from server.cameras.errors import BadFrame
from server.cameras.frame import ColorSource, to_bgr
from server.cameras.pump import Pump, call_in_loop, stall_limit
from server.cameras.sources import Sample
from server.cameras.status import CameraStatus, StatusTracker
from server.config import CameraSettings, SecuritySettings

__all__ = ["MainStream"]

log = logging.getLogger("server.cameras")


class MainStream:
    """On-demand reader of a camera's main ``url``; use from the event loop only."""

    def __init__(
        self, settings: CameraSettings, security: SecuritySettings, idle_timeout: float = 30.0
    ) -> None:
        self.settings = settings
        self.security = security
        self.idle_timeout = idle_timeout
        self._lock = threading.Lock()
        self._latest: tuple[ColorSource, float] | None = None
        self._waiting = False
        self._used = 0.0
        self._pump: Pump | None = None
        self._pumps: list[Pump] = []
        self._fresh = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    @property
    def pumps(self) -> list[Pump]:
        """Every pump started and not yet reaped (for stopping and joining)."""
        self._pumps = [p for p in self._pumps if p.thread.is_alive()]
        return list(self._pumps)

    def _idle(self) -> bool:
        return time.monotonic() - self._used > self.idle_timeout

    def _publish(
        self, sample: Sample, luma: NDArray[np.uint8] | None, mono: float, _: float
    ) -> None:
        with self._lock:
            self._latest = (sample.color, mono)
            wake, self._waiting = self._waiting, False
        if wake and self._loop is not None:
            call_in_loop(self._loop, self._fresh.set)

    def _log_status(self, status: CameraStatus) -> None:
        if status.state == "offline":
            log.warning("camera %s main stream offline: %s", self.settings.id, status.last_error)

    def _ensure_running(self, loop: asyncio.AbstractEventLoop) -> None:
        pump = self._pump
        if pump is not None and not pump.stopping:
            return
        with self._lock:
            self._latest = None
        self._fresh.clear()
        pump = Pump(
            name=f"camera-{self.settings.id}-main",
            loop=loop,
            url=self.settings.url,
            settings=self.settings,
            security=self.security,
            tracker=StatusTracker(self.settings.id, self._log_status),
            publish=self._publish,
            fps=None,
            detect_width=0,
            need_luma=False,
            idle=self._idle,
        )
        self._pump = pump
        # Reap the pumps that have ended (one per idle close), or a camera opened on demand
        # for every event keeps one per event for good.
        self._pumps = [p for p in self._pumps if p.thread.is_alive()]
        self._pumps.append(pump)
        pump.start()

    def _current(self) -> ColorSource | None:
        """The newest frame, unless it is so old the stream must be considered lost."""
        with self._lock:
            latest = self._latest
        if latest is None:
            return None
        color, mono = latest
        if time.monotonic() - mono > stall_limit(self.settings, None):
            return None
        return color

    async def color_frame(self) -> NDArray[np.uint8] | None:
        """The newest main-stream frame as BGR, opening the stream if needed.

        Waits up to the camera's open timeout (plus a keyframe's worth) for a frame
        when there is no recent one; returns None if none came.
        """
        if self._closed:
            return None  # the camera is stopping: no new stream may outlive it
        self._loop = asyncio.get_running_loop()
        self._used = time.monotonic()
        self._ensure_running(self._loop)
        color = self._current()
        if color is None:
            self._fresh.clear()
            with self._lock:
                self._waiting = True
            try:
                await asyncio.wait_for(self._fresh.wait(), self.settings.open_timeout + 2.0)
            except TimeoutError:
                return None
            color = self._current()
            if color is None:
                return None
        try:
            return await asyncio.to_thread(to_bgr, color)
        except BadFrame:
            return None

    def request_stop(self) -> None:
        """Ask every main-stream pump to finish; no stream is opened after this."""
        self._closed = True
        for pump in self.pumps:
            pump.request_stop()
