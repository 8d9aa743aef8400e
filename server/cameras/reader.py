"""The asyncio face of one camera: a reader thread and a latest-frame slot.

The thread decodes everything the camera sends (FFmpeg releases the GIL while it
does), runs the analyser (the motion detector) on each rate-limited frame, and puts
the newest frame, with its analysis, into a one-frame slot. The event loop
is woken only when a coroutine is actually waiting in :meth:`CameraReader.next_frame`,
through a pipe that the readers of one loop share (see :class:`_Waker`); status changes
reach the loop the same way.

If the pipeline has not yet taken the analysed frame in the slot when the next one is
due, the newer frame is skipped before it is analysed, and counted as dropped: the
detector's work is not spent on a result nobody would see, and the pipeline gets every
result the detector computed. This holds for at most ``hold`` seconds of the waiting
frame's age; past that (a pipeline stuck for longer) the next frame is analysed and
replaces the old one, also counted as dropped, so the pipeline never falls behind by
more than that and works on a recent picture.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from server.cameras.errors import BadFrame, SourceError
from server.cameras.frame import Frame
from server.cameras.mainstream import MainStream
from server.cameras.pump import Pump, stall_limit
from server.cameras.sources import Sample
from server.cameras.status import CameraStatus, StatusTracker
from server.config import CameraSettings, SecuritySettings
from server.redact import secrets

__all__ = ["Analyser", "CameraReader", "StatusCallback"]

log = logging.getLogger("server.cameras")

StatusCallback = Callable[[CameraStatus], None]
Analyser = Callable[[NDArray[np.uint8], float], Any]
"""``analyse(luma, mono_time)``, run on the reader thread; its result is the frame's
``analysis``."""

# A consumer that called next_frame this recently still counts as keeping up, so a
# frame it never took was dropped rather than merely unwanted.
_CONSUMER_ACTIVE = 1.0
# How old an analysed frame the pipeline has not taken may get before a newer one is
# analysed to replace it (see the module doc).
HOLD = 0.1


class CameraReader:
    """Reads one camera on its own thread and hands the newest frame to the event loop.

    ``detect_width`` is the detector's working width: JPEG sources are decoded
    reduced, but never narrower than this. ``main_idle`` is how long the main stream
    of a camera with a ``detect_url`` stays open after the last :meth:`color_frame`.
    ``hold`` bounds how long an analysed frame waits for the pipeline while newer ones
    are skipped unanalysed (see the module doc).
    """

    def __init__(
        self,
        settings: CameraSettings,
        security: SecuritySettings,
        detect_width: int = 320,
        *,
        main_idle: float = 30.0,
        hold: float = HOLD,
    ) -> None:
        self.settings = settings
        self.security = security
        self.detect_width = detect_width
        self.hold = hold
        # Scrub these passwords from any text, even where they appear on their own.
        secrets.add_url(settings.url)
        secrets.add_url(settings.detect_url)
        self._lock = threading.Lock()
        self._slot: Frame | None = None
        self._seq = 0
        self._taken = 0
        self._consumer_at = float("-inf")
        self._waiters: list[asyncio.Future[None]] = []
        self._callbacks: list[StatusCallback] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waker: _Waker | None = None
        self._closed = False
        self._logged_state = "starting"
        self._tracker = StatusTracker(settings.id, self._status_changed)
        self._pump: Pump | None = None
        self._fps: float | None = settings.detect.fps
        self._analyser: Analyser | None = None
        self._main = MainStream(settings, security, main_idle) if settings.detect_url else None

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        """Start the reader thread; call from inside the running event loop."""
        if self._loop is not None:
            raise RuntimeError(f"camera {self.settings.id} reader already started")
        self._loop = asyncio.get_running_loop()
        self._waker = _waker(self._loop)
        if not self.settings.enabled:
            self._tracker.offline("camera disabled in the configuration")
            return
        self._pump = Pump(
            name=f"camera-{self.settings.id}",
            loop=self._loop,
            url=self.settings.detect_url or self.settings.url,
            settings=self.settings,
            security=self.security,
            tracker=self._tracker,
            publish=self._publish,
            wants=self._wants,
            fps=self._fps,
            detect_width=self.detect_width,
        )
        self._pump.start()

    # The server core calls stop(timeout=...): the name is part of the interface.
    async def stop(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Stop and join the reader thread(s), then fail any waiting :meth:`next_frame`.

        A thread blocked inside a network read cannot be interrupted; it finishes
        when that read times out (the camera's read timeout) and then closes its
        connection. If that is later than ``timeout``, a warning is logged and the
        (daemon) thread is left to finish on its own.
        """
        if self._main is not None:
            # First, so that a snapshot asked for while this waits opens no new stream;
            # it asks each of its pumps to stop.
            self._main.request_stop()
        if self._pump is not None:
            self._pump.request_stop()
        pumps = [p for p in (self._pump, *(self._main.pumps if self._main else [])) if p]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                for pump in pumps:
                    await pump.wait_stopped()
        for pump in pumps:
            if pump.thread.is_alive():
                log.warning(
                    "camera %s: reader thread %s still blocked in I/O after %g s; "
                    "it ends when the read times out",
                    self.settings.id,
                    pump.thread.name,
                    timeout,
                )
        with self._lock:
            self._closed = True
            waiters, self._waiters = self._waiters, []
        _wake(waiters)
        waker, self._waker = self._waker, None
        if waker is not None:
            waker.release()

    def set_fps(self, fps: float | None) -> None:
        """Hand over frames at most ``fps`` times a second from now on (a live change of
        ``detect.fps``; no reconnect)."""
        self._fps = fps
        if self._pump is not None:
            self._pump.rate.set_fps(fps)

    def set_analyser(self, analyse: Analyser | None) -> None:
        """Run ``analyse(luma, mono_time)`` on the reader thread for every frame handed
        over; its result becomes the frame's ``analysis``. It must not raise."""
        self._analyser = analyse

    # -- frames ----------------------------------------------------------------

    def _waiting(self, mono: float) -> Frame | None:
        """The frame in the slot if the pipeline, still active, has not taken it yet."""
        old = self._slot
        if old is None or old.seq <= self._taken or mono - self._consumer_at >= _CONSUMER_ACTIVE:
            return None
        return old

    def _wants(self, mono: float) -> bool:
        # Reader thread: a frame the rate limit let through. Skip it while the pipeline
        # has a recent analysed frame still to take (see the module doc).
        with self._lock:
            old = self._waiting(mono)
            skip = old is not None and mono - old.mono_time < self.hold
        if skip:
            self._tracker.add_dropped()
        return not skip

    def _publish(
        self, sample: Sample, luma: NDArray[np.uint8] | None, mono: float, wall: float
    ) -> None:
        assert luma is not None
        analyse = self._analyser
        analysis = analyse(luma, mono) if analyse is not None else None
        with self._lock:
            self._seq += 1
            frame = Frame(
                seq=self._seq,
                luma=luma,
                wall_time=wall,
                mono_time=mono,
                width=sample.width,
                height=sample.height,
                color_source=sample.color,
                analysis=analysis,
            )
            dropped = self._waiting(mono) is not None
            self._slot = frame
            waiters = self._waiters
            if waiters:
                self._waiters = []
        if dropped:
            self._tracker.add_dropped()
        if waiters and self._waker is not None:
            self._waker.wake(waiters)

    async def next_frame(self, after_seq: int) -> Frame:
        """The newest frame with ``seq > after_seq``, waiting for one if needed.

        Cancellable. Raises :class:`SourceError` once the reader has been stopped.
        """
        loop = asyncio.get_running_loop()
        while True:
            with self._lock:
                if self._closed:
                    raise SourceError(f"camera {self.settings.id} reader stopped")
                self._consumer_at = time.monotonic()
                frame = self._slot
                if frame is not None and frame.seq > after_seq:
                    self._taken = max(self._taken, frame.seq)
                    return frame
                waiter: asyncio.Future[None] = loop.create_future()
                self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if not waiter.done():
                    with self._lock:
                        if waiter in self._waiters:
                            self._waiters.remove(waiter)

    def latest(self) -> Frame | None:
        """The newest frame, without waiting (and without counting as taken)."""
        return self._slot

    async def color_frame(self) -> NDArray[np.uint8] | None:
        """A full-size BGR image from the main ``url`` stream, or None if there is no
        recent one (the camera is offline).

        Without a ``detect_url`` this is the newest frame of the one stream. With one,
        the main stream is opened on demand and closed again after it goes unused.
        The conversion runs in a worker thread, off the event loop.
        """
        if self._main is not None:
            return await self._main.color_frame()  # None once the camera began to stop
        frame = self._slot
        if frame is None:
            return None
        if time.monotonic() - frame.mono_time > stall_limit(self.settings, self.status.kind):
            return None  # the camera is lost; an old picture would mislead
        try:
            return await asyncio.to_thread(frame.to_bgr)
        except BadFrame:
            return None

    # -- status ----------------------------------------------------------------

    @property
    def status(self) -> CameraStatus:
        """A consistent copy of the camera's status."""
        return self._tracker.snapshot()

    def on_status_change(self, callback: StatusCallback) -> None:
        """Call ``callback(status)`` on the event loop whenever the state or
        ``last_error`` changes."""
        self._callbacks.append(callback)

    def _status_changed(self, status: CameraStatus) -> None:
        # Runs on the reader thread (or the loop); logs once per change.
        previous, self._logged_state = self._logged_state, status.state
        if status.state == "online" and previous != "online":
            size = f" {status.width}x{status.height}" if status.width else ""
            log.info("camera %s online (%s%s)", status.camera, status.kind, size)
        elif status.state == "offline":
            log.warning("camera %s offline: %s", status.camera, status.last_error)
        else:
            log.warning("camera %s: %s", status.camera, status.last_error)
        waker = self._waker
        if waker is None or not self._callbacks:
            return
        waker.tell(self._dispatch, status)

    def _dispatch(self, status: CameraStatus) -> None:
        for callback in list(self._callbacks):
            try:
                callback(status)
            except Exception:
                log.exception("camera %s status callback failed", self.settings.id)


def _wake(waiters: list[asyncio.Future[None]]) -> None:
    for waiter in waiters:
        if not waiter.done():
            waiter.set_result(None)


class _Waker:
    """Wakes :meth:`CameraReader.next_frame` waiters on one event loop from reader threads,
    and hands it their status changes.

    A reader thread queues its waiters and, if the queue was empty, writes one byte to a
    pipe the loop watches; the loop then wakes every queued waiter at once. Frames of
    several cameras that arrive before the loop runs share one wake-up, and the write
    happens outside the GIL (``os.write`` releases it), where ``call_soon_threadsafe``
    holds the GIL through the system call that wakes the loop's thread, which under load
    made it the largest GIL holder of the reader threads. Status changes are rare; they
    share the pipe so that everything a reader thread tells the loop takes one path. Once
    a reader has stopped (released the waker) its status changes are no longer passed on.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # Weak: the table of wakers must not keep a finished loop alive.
        self._loop = weakref.ref(loop)
        self._lock = threading.Lock()
        self._calls: list[Callable[[], None]] = []
        """What to run on the loop at its next wake-up, in order."""
        self._users = 0
        self._rfd, self._wfd = os.pipe()
        os.set_blocking(self._rfd, False)
        os.set_blocking(self._wfd, False)
        # Closes the pipe when the last reader stops, or else when the waker is collected.
        self._close = weakref.finalize(self, _close_fds, self._rfd, self._wfd)
        loop.add_reader(self._rfd, self._run)

    def wake(self, waiters: list[asyncio.Future[None]]) -> None:
        """Queue ``waiters`` to be woken on the loop (any thread)."""
        self._call(functools.partial(_wake, waiters))

    def tell(self, callback: StatusCallback, status: CameraStatus) -> None:
        """Queue ``callback(status)`` to run on the loop (any thread)."""
        self._call(functools.partial(callback, status))

    def _call(self, call: Callable[[], None]) -> None:
        with self._lock:
            first = not self._calls
            self._calls.append(call)
            # Written under the lock, so that release() never closes the pipe (and the
            # number is never reused) between the check and the write. A full pipe (never:
            # one byte per batch) has nobody more to tell.
            if first and self._wfd >= 0:
                with contextlib.suppress(OSError):
                    os.write(self._wfd, b"\0")

    def _run(self) -> None:
        # On the loop: empty the pipe first, then the queue, so that a waiter queued after
        # the swap always comes with a byte of its own.
        with contextlib.suppress(OSError):
            while os.read(self._rfd, 4096):
                pass
        with self._lock:
            calls, self._calls = self._calls, []
        _run_all(calls)

    def acquire(self) -> None:
        """One more reader uses this waker (on the loop)."""
        self._users += 1

    def release(self) -> None:
        """A reader stopped (on the loop); the last one closes the pipe."""
        self._users -= 1
        if self._users > 0:
            return
        loop = self._loop()
        if loop is not None:
            _wakers.pop(loop, None)
            if not loop.is_closed():
                loop.remove_reader(self._rfd)
        with self._lock:
            self._wfd = -1
            calls, self._calls = self._calls, []
        self._close()
        _run_all(calls)


def _run_all(calls: list[Callable[[], None]]) -> None:
    for call in calls:
        call()


def _close_fds(*fds: int) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


_wakers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Waker] = weakref.WeakKeyDictionary()


def _waker(loop: asyncio.AbstractEventLoop) -> _Waker:
    """The loop's shared waker, with one more user (call on the loop, so no two are made
    for one loop)."""
    waker = _wakers.get(loop)
    if waker is None:
        waker = _wakers[loop] = _Waker(loop)
    waker.acquire()
    return waker
