"""One camera's detection loop: analysed frames in, motion messages and events out.

The detector runs on the camera's reader thread (:mod:`server.detection`), so the frame this
loop awaits already carries its :class:`~server.detection.Detection`: the loop only publishes
a rate-limited :class:`MotionMessage` and feeds the :class:`EventTracker`, a few microseconds
a frame. Everything slow (colour frames, JPEG encoding, disk) happens in a side task fed
through a small queue that drops requests rather than wait, so nothing can hold up detection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from server.bus import Hub
from server.config import CameraSettings
from server.detection import Analyse, Detection, DetectorStage
from server.events import EventTracker, Observation, Transition
from server.messages import (
    Box,
    Event,
    EventEndMessage,
    EventStartMessage,
    EventUpdateMessage,
    MotionMessage,
)
from server.metrics import Metrics
from server.snapshots import annotate, encode_jpeg
from server.storage import SnapshotKind, Storage

__all__ = ["CameraPipeline", "FrameLike", "FrameSource", "LiveView"]

log = logging.getLogger(__name__)

MOTION_INTERVAL = 0.2
"""Least seconds between two motion messages while motion goes on (<= 5/s)."""
IDLE_INTERVAL = 1.0
"""Least seconds between two motion messages while all is still."""
SNAPSHOT_QUEUE = 4
ENDED_KEPT = SNAPSHOT_QUEUE + 1
"""Ended events remembered for a snapshot still on its way: as many as can be queued, plus
the one being written."""
HEARTBEAT = 5.0
"""Seconds between saves of an open event's last-seen time, so that after a crash the next
start closes it near the time the server died rather than at its last update."""


class FrameLike(Protocol):
    """What the pipeline needs from a decoded frame: its place and time, and what the
    reader's analyser made of it."""

    @property
    def seq(self) -> int: ...
    @property
    def wall_time(self) -> float: ...
    @property
    def mono_time(self) -> float: ...
    @property
    def analysis(self) -> Any: ...


class FrameSource(Protocol):
    """What the pipeline needs from a camera reader."""

    def set_analyser(self, analyse: Analyse | None) -> None: ...
    async def next_frame(self, after_seq: int) -> Any: ...
    async def color_frame(self) -> Any: ...


class CameraPipeline:
    """Detection and events for one camera. :meth:`run` is its long-lived task."""

    def __init__(
        self,
        camera: CameraSettings,
        reader: FrameSource,
        *,
        hub: Hub,
        storage: Storage,
        metrics: Metrics,
        new_id: Callable[[float], str],
    ) -> None:
        self.camera = camera
        self.reader = reader
        self._hub = hub
        self._storage = storage
        self._metrics = metrics
        self.tracker = EventTracker(camera.id, camera.events, new_id)
        self.tracker.configure(camera.events, [z.name for z in camera.zones])
        self.detector = DetectorStage(
            camera.id,
            camera.detector_config(),
            enabled=camera.detect.enabled,
            observe=metrics.detect_seconds.observe,
        )
        """Runs on the reader thread; its configuration is handed over, never shared."""
        reader.set_analyser(self.detector.analyse)
        self._snapshots: asyncio.Queue[tuple[Event, SnapshotKind, list[Box]]] = asyncio.Queue(
            SNAPSHOT_QUEUE
        )
        self._ended_bare: dict[str, Event] = {}
        """The last events that ended without a snapshot, whose snapshot may still come."""
        self.processed = 0
        self.events = 0
        self.motion = False
        self.score = 0.0
        self.boxes: list[Box] = []
        self.zones: dict[str, bool] = {}
        self._last_publish = 0.0
        self._last_saved = 0.0
        self.live = LiveView(self)

    # -- configuration -----------------------------------------------------------------------

    def configure(self, camera: CameraSettings) -> None:
        """Apply changed detect settings, zones, masks and event rules, live."""
        self.camera = camera
        self.detector.configure(camera.detector_config(), camera.detect.enabled)
        names = [z.name for z in camera.zones]
        self.tracker.configure(camera.events, names)
        self.zones = {k: v for k, v in self.zones.items() if k in names}
        if not camera.detect.enabled and self.tracker.active:
            self._apply(self.tracker.close(time.time(), interrupted=False))
            self._set_idle()

    # -- the loop ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Analyse frames until cancelled."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._snapshot_worker(), name=f"snapshots:{self.camera.id}")
            await self._frames()

    async def _frames(self) -> None:
        seq = 0
        while True:
            # While an event is open, wake up even without frames so a camera that went
            # silent still ends its event after off_delay.
            timeout = 1.0 if self.tracker.active else None
            try:
                # asyncio.timeout rather than wait_for: on Python 3.11 wait_for with a timeout
                # wraps every wait in a new Task, about three times the cost of the wait itself.
                async with asyncio.timeout(timeout):
                    frame: FrameLike = await self.reader.next_frame(seq)
            except TimeoutError:
                self._tick()
                continue
            seq = frame.seq
            try:
                self._analyse(frame)
            except Exception:
                # A bug in the event handling of one frame must not take the camera down.
                log.exception("frame handling failed", extra={"camera": self.camera.id})
            # Not kept through the wait for the next one: it holds a decoded picture, and
            # the decoder would need one more buffer (3 MB at 1080p) for the frame after.
            del frame

    def _tick(self) -> None:
        """Let time pass for an open event with no analysed frame: it ends after off_delay."""
        for t in self.tracker.tick(time.monotonic()):
            self._apply(t)
        if not self.tracker.active:
            self._set_idle()

    def _analyse(self, frame: FrameLike) -> None:
        # The reader's rate limit already applied detect.fps; the detector ran on its thread.
        detection = frame.analysis
        if not isinstance(detection, Detection) or not self.camera.detect.enabled:
            # No analysis (the detector failed on this frame, and logged why): for the
            # events it is time passing without motion, as with no frames at all.
            if self.tracker.active:
                self._tick()
            return
        result, w, h = detection.result, detection.width, detection.height
        self.processed += 1
        boxes: list[Box] = [
            (x1 / w, y1 / h, min(1.0, x2 / w), min(1.0, y2 / h)) for x1, y1, x2, y2 in result.boxes
        ]
        changed = result.motion != self.motion
        self.motion, self.score, self.boxes = result.motion, float(result.score), boxes
        self.zones = dict(result.zones)
        transitions = self.tracker.observe(
            Observation(
                frame.wall_time, result.motion, self.score, boxes, self.zones, frame.mono_time
            )
        )
        for t in transitions:
            self._apply(t)
        current = self.tracker.current
        if current is not None and frame.wall_time - self._last_saved >= HEARTBEAT:
            self._storage.save_event(current, frame.wall_time)
            self._last_saved = frame.wall_time
        changed = changed or bool(transitions) or self.tracker.zones_changed
        interval = MOTION_INTERVAL if self.motion or self.tracker.active else IDLE_INTERVAL
        if changed or frame.mono_time - self._last_publish >= interval:
            self._last_publish = frame.mono_time
            self._publish_motion(frame.wall_time)

    def _publish_motion(self, ts: float) -> None:
        self._hub.publish(
            MotionMessage(
                camera=self.camera.id,
                ts=ts,
                motion=self.motion,
                score=min(1.0, max(0.0, self.score)),
                boxes=self.boxes,
                zones=self.zones,
            )
        )

    def _set_idle(self) -> None:
        if self.motion or self.boxes:
            self.motion, self.score, self.boxes = False, 0.0, []
            self.zones = dict.fromkeys(self.zones, False)
            self._publish_motion(time.time())

    # -- events ------------------------------------------------------------------------------

    def _apply(self, t: Transition | None) -> None:
        """Store and announce one transition, and ask for its snapshot."""
        if t is None:
            return
        ev = t.event
        if t.kind == "end" and not ev.has_snapshot:
            # The tracker's event says whether a snapshot was stored while it was open.
            self._ended_bare[ev.id] = ev
            while len(self._ended_bare) > ENDED_KEPT:
                del self._ended_bare[next(iter(self._ended_bare))]
        last_seen = ev.end.timestamp() if ev.end else time.time()
        self._storage.save_event(ev, last_seen)
        self._last_saved = last_seen
        if t.kind == "start":
            self.events += 1
            self._hub.publish(EventStartMessage(event=ev, ts=ev.start.timestamp()))
        elif t.kind == "update":
            self._hub.publish(EventUpdateMessage(event=ev))
        else:
            self._hub.publish(EventEndMessage(event=ev))
        if t.snapshot is not None:
            try:
                self._snapshots.put_nowait((ev, t.snapshot, list(ev.boxes)))
            except asyncio.QueueFull:
                log.warning("snapshot skipped, writer busy", extra={"camera": self.camera.id})

    def close_event(self, interrupted: bool) -> None:
        """End the open event now (shutdown or camera removal)."""
        self._apply(self.tracker.close(time.time(), interrupted=interrupted))

    async def _snapshot_worker(self) -> None:
        while True:
            ev, kind, boxes = await self._snapshots.get()
            try:
                frame = await self.reader.color_frame()
            except Exception as exc:  # the reader's own errors are already in its status
                log.warning("no colour frame for snapshot: %s", exc, extra={"camera": ev.camera})
                continue
            if frame is None:
                continue
            written = await self._storage.write_snapshot(ev, kind, frame, boxes)
            # A full-size colour image (6 MB at 1080p): not kept until the next snapshot.
            del frame
            if not written:
                continue
            current = self.tracker.current
            if current is not None and current.id == ev.id:
                updated = self.tracker.mark_snapshot()
                if updated is not None:
                    self._storage.save_event(updated, time.time())
                    self._hub.publish(EventUpdateMessage(event=updated))
            else:
                ended = self._ended_bare.pop(ev.id, None)
                if ended is not None:
                    # The event ended before its snapshot was written (a main stream opened
                    # on demand can take seconds): the stored event has one now, and those
                    # told at its end that it had none are told it has.
                    ended = ended.model_copy(update={"has_snapshot": True})
                    self._hub.publish(EventUpdateMessage(event=ended))


class LiveView:
    """JPEGs of a camera's newest colour frame for snapshots and MJPEG viewers.

    Encoding happens in a worker thread and is shared: however many viewers watch, a camera
    costs at most one encode per ``max_age`` per variant.
    """

    def __init__(self, pipeline: CameraPipeline) -> None:
        self._pipeline = pipeline
        self._cache: dict[bool, tuple[float, bytes]] = {}
        self._locks = {False: asyncio.Lock(), True: asyncio.Lock()}

    async def jpeg(
        self, boxes: bool = False, max_age: float = 0.0, quality: int = 80
    ) -> bytes | None:
        """The newest frame as JPEG (``None`` before the first frame), with boxes and zones
        drawn when ``boxes``; reuses an encode younger than ``max_age`` seconds."""
        async with self._locks[boxes]:
            cached = self._cache.get(boxes)
            now = time.monotonic()
            if cached is not None and now - cached[0] < max_age:
                return cached[1]
            frame = await self._pipeline.reader.color_frame()
            if frame is None:
                return None
            p = self._pipeline
            args = (frame, p.boxes, p.camera.zones, p.camera.masks, p.tracker.active_zones)
            data = await asyncio.to_thread(_encode_live, boxes, quality, *args)
            self._cache[boxes] = (now, data)
            return data


def _encode_live(draw: bool, quality: int, frame: npt.NDArray[np.uint8], *args: Any) -> bytes:
    if draw:
        with contextlib.suppress(ValueError):
            frame = annotate(frame, *args)
    return encode_jpeg(frame, quality)
