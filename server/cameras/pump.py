"""The reader thread: open a camera, read it, and reconnect forever.

One :class:`Pump` owns one thread and one source at a time. It never gives up on a
camera that may come back: every failure is recorded in the camera's status, then
the pump waits a capped, jittered, exponentially growing delay and opens the
source again. No frame for ``stall_timeout`` seconds counts as a failure too.
Every blocking call underneath is bounded by the camera's open or read timeout,
so a dead camera can delay stopping by at most that long.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import traceback
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from server.backoff import Backoff
from server.cameras.errors import BadFrame, SourceError, UntrustedCertificate
from server.cameras.policy import SourceKind, SourcePlan, check_host, plan_source
from server.cameras.slots import DECODE_SLOTS
from server.cameras.sources import (
    HttpCameraClient,
    NotACameraUrl,
    Sample,
    Source,
    make_source,
    probe_http_kind,
)
from server.cameras.status import StatusTracker
from server.config import CameraSettings, SecuritySettings
from server.heap import release_free_memory
from server.redact import redact_text

__all__ = ["Publish", "Pump", "RateLimit", "Wants", "call_in_loop", "stall_limit"]

log = logging.getLogger("server.cameras")

Publish = Callable[[Sample, NDArray[np.uint8] | None, float, float], None]
"""``publish(sample, luma, mono_time, wall_time)``; ``luma`` is None when not asked for."""
Wants = Callable[[float], bool]
"""``wants(mono_time)``: whether a frame the rate limit let through is to be used now;
if not, it is skipped before its grey image is made (the callback counts it)."""


def call_in_loop(
    loop: asyncio.AbstractEventLoop, callback: Callable[..., object], *args: object
) -> None:
    """Schedule ``callback(*args)`` on ``loop`` from any thread; a no-op once it is closed."""
    with contextlib.suppress(RuntimeError):  # closed loop: nobody is left to tell
        loop.call_soon_threadsafe(callback, *args)


def stall_limit(settings: CameraSettings, kind: str | None) -> float:
    """Seconds without a frame that count as a lost camera (a snapshot camera polled
    slowly is allowed two intervals)."""
    if kind == "snapshot":
        return max(settings.stall_timeout, 2 * settings.snapshot_interval)
    return settings.stall_timeout


class RateLimit:
    """Lets through at most ``fps`` frames a second, on average, from any source rate.

    A quarter-interval of slack keeps a camera sending exactly ``fps`` from losing
    frames to timing jitter; the schedule advances by whole intervals, so the
    average never exceeds ``fps``. A frame up to two intervals late keeps the schedule,
    so the frames queued behind it (a network hiccup, a reader that was kept off the CPU
    for a moment) still pass; only a longer gap starts a new schedule.

    The schedule belongs to the reader thread: :meth:`set_fps`, called from the event loop,
    only publishes the new interval (one float, replaced whole), and :meth:`due` takes it up
    before judging its next frame. So no read-modify-write of the schedule ever races
    another, whatever the interpreter's thread switching.
    """

    def __init__(self, fps: float | None) -> None:
        self._wanted = _interval(fps)
        self._interval = self._wanted
        self._next = 0.0

    @property
    def interval(self) -> float:
        """Seconds between frames let through (the newest rate set; 0 for no limit)."""
        return self._wanted

    def set_fps(self, fps: float | None) -> None:
        """Change the rate from any thread; the next frame is judged by the new one."""
        self._wanted = _interval(fps)

    def due(self, now: float) -> bool:
        """Whether a frame arriving at ``now`` (monotonic) should be used (reader thread)."""
        interval = self._wanted
        if interval != self._interval:
            # The next frame is due one new interval after the last one used, so a faster
            # rate does not wait out the rest of the old, longer interval.
            self._next += interval - self._interval
            self._interval = interval
        if not interval:
            return True
        if now < self._next - interval / 4:
            return False
        behind = now - self._next >= 2 * interval
        self._next = now + interval if behind else self._next + interval
        return True


def _interval(fps: float | None) -> float:
    return 1.0 / fps if fps else 0.0


class Pump:
    """Reads one camera URL on a dedicated thread until stopped.

    ``publish`` receives the frames the rate limit lets through and ``wants``, if given,
    accepts; ``idle``, if given, is polled between frames and attempts and ends the pump
    when it returns True (used for the on-demand main stream).
    """

    def __init__(
        self,
        *,
        name: str,
        loop: asyncio.AbstractEventLoop,
        url: str,
        settings: CameraSettings,
        security: SecuritySettings,
        tracker: StatusTracker,
        publish: Publish,
        fps: float | None,
        detect_width: int,
        need_luma: bool = True,
        wants: Wants | None = None,
        idle: Callable[[], bool] | None = None,
    ) -> None:
        self.url = url
        self.settings = settings
        self.security = security
        self.tracker = tracker
        self._publish = publish
        self.rate = RateLimit(fps)
        """The ``detect.fps`` limit; :meth:`RateLimit.set_fps` changes it live."""
        self._detect_width = detect_width
        self._need_luma = need_luma
        self._wants = wants
        self._idle = idle
        self._stop = threading.Event()
        self._loop = loop
        self._exited = asyncio.Event()
        self._kind: SourceKind | None = None
        # A low cap, because what matters is recovery time: a camera that comes back is
        # online within one cap plus its connect time, and failing attempts are cheap (a
        # refused connect) or already slow (a timeout).
        self._backoff = Backoff(first=0.5, cap=3.0)
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self.thread.start()

    def request_stop(self) -> None:
        """Ask the thread to finish; it does so at its next check (see the module doc)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        """True once a stop was requested (or the pump ended itself)."""
        return self._stop.is_set()

    def _run(self) -> None:
        backoff = self._backoff
        try:
            while not self._stop.is_set() and not (self._idle and self._idle()):
                source: Source | None = None
                try:
                    source = self._open()
                    self._read(source)
                except SourceError as exc:
                    if self._stop.is_set():
                        break
                    self.tracker.offline(exc.reason)
                    if not exc.retry:
                        break
                except Exception:
                    # A bug or a library surprise must not kill the camera for good.
                    reason = "internal error while reading the camera (see the server log)"
                    log.error(
                        "camera reader %s failed: %s",
                        self.thread.name,
                        redact_text(traceback.format_exc()),
                    )
                    self.tracker.offline(reason)
                finally:
                    if source is not None:
                        source.close()
                        # The connection's buffers are free now; without this, the heaps
                        # keep their pages until a later connection happens to reuse them.
                        release_free_memory()
                if self._stop.wait(backoff.next()):
                    break
        finally:
            self._stop.set()
            call_in_loop(self._loop, self._exited.set)

    async def wait_stopped(self) -> None:
        """Wait (on the event loop) until the thread has finished."""
        await self._exited.wait()
        self.thread.join()

    def _open(self) -> Source:
        plan = plan_source(self.url, self.settings.kind, self.security)
        check_host(plan, self.security)
        if plan.kind == "http":
            if self._kind is None:
                client = HttpCameraClient(plan, self.settings, self.security)
                try:
                    self._kind = probe_http_kind(client, self.settings.open_timeout)
                finally:
                    client.close()
        else:
            self._kind = plan.kind
        assert self._kind is not None
        self.tracker.set_kind(self._kind)
        source = make_source(self._kind, plan, self.settings, self.security, self._stop)
        try:
            source.open()
        except SourceError as exc:
            source.close()
            if self._kind == "mjpeg":
                raise self._why_not_mjpeg(plan, exc) from None
            raise
        except BaseException:
            source.close()
            raise
        return source

    def _why_not_mjpeg(self, plan: SourcePlan, failed: SourceError) -> SourceError:
        """A clearer error for an MJPEG open that failed: FFmpeg says "cannot connect" or
        "invalid data" for a URL that answers fine with a web page or a single JPEG, so ask
        the URL once what it serves."""
        client = HttpCameraClient(plan, self.settings, self.security)
        try:
            served = probe_http_kind(client, self.settings.open_timeout)
        except (NotACameraUrl, UntrustedCertificate) as exc:
            # A web page, or a certificate FFmpeg refused without saying why: both say
            # more than FFmpeg's "input/output error".
            return exc
        except Exception:
            return failed  # the probe failed too: FFmpeg's reason stands
        finally:
            client.close()
        if served == "mjpeg":
            return failed
        return SourceError(
            f"{plan.where} serves single JPEG images, not an MJPEG stream: "
            "use kind: snapshot or auto"
        )

    def _read(self, source: Source) -> None:
        """Read until stopped (returns) or the source fails (raises)."""
        stall = stall_limit(self.settings, self._kind)
        last_good = time.monotonic()
        got_any = False
        samples = source.samples()
        try:
            for item in samples:
                now = time.monotonic()
                if item is None or isinstance(item, BadFrame):
                    DECODE_SLOTS.release()
                    if item is not None:
                        self.tracker.bad_frame(item.reason)
                    if now - last_good > stall:
                        raise SourceError(f"no valid frame for {stall:g} s")
                    if self._stop.is_set():
                        break
                    continue
                if not got_any:
                    # A connection that delivered is a recovery: the next drop retries
                    # quickly again, however long the outage before it was.
                    self._backoff.reset()
                last_good, got_any = now, True
                wall = time.time()
                self.tracker.frame(now, wall, item.width, item.height)
                if self.rate.due(now) and (self._wants is None or self._wants(now)):
                    try:
                        luma = item.luma(self._detect_width) if self._need_luma else None
                    except BadFrame as bad:
                        self.tracker.bad_frame(bad.reason)
                    else:
                        self._publish(item, luma, now, wall)
                DECODE_SLOTS.release()
                if self._stop.is_set() or (self._idle and self._idle()):
                    break
        finally:
            DECODE_SLOTS.release()
            samples.close()
