"""The server core: cameras managed live, their pipelines, storage and the hub.

:class:`Core` implements :class:`server.services.Services` for the WebSocket and MQTT front
ends and backs the REST API.

**Camera persistence.** The config file gives the starting list. Every change made through
the API (create, update, delete) is stored in the database and wins over the file on the
next start, camera by camera:

- a camera created or changed through the API is loaded from the database, whatever the file
  says about that id;
- a camera deleted through the API stays deleted even if the file still lists it;
- a camera only in the file is loaded from the file (edits to it in the file apply).

To hand a camera back to the file, delete it through the API and remove its row from the
``cameras`` table (``DELETE FROM cameras WHERE id = '...'``), or start with a new data dir.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from server.auth import Role, TokenAuth
from server.bus import Hub
from server.config import CameraSettings, SecuritySettings, Settings
from server.ha_entities import entity_clash
from server.ids import UlidGenerator
from server.messages import (
    CameraInfo,
    CameraRemoved,
    CameraState,
    CameraStatusMessage,
    Event,
    EventDeletedMessage,
    EventStartMessage,
    ServerMessage,
    StatsMessage,
)
from server.metrics import CameraSample, Metrics
from server.pipeline import CameraPipeline, FrameSource
from server.redact import redact_text, redact_url, secrets
from server.services import CameraNotFound
from server.storage import Storage

__all__ = [
    "CameraConflict",
    "CameraNotFound",
    "CameraRefused",
    "CameraStatusView",
    "Core",
    "ReaderFactory",
    "TooManyCameras",
]

if TYPE_CHECKING:
    from server.cameras.status import CameraStatus

log = logging.getLogger(__name__)

STATS_INTERVAL = 5.0
STOP_TIMEOUT = 5.0
RETENTION_BATCH = 100
"""Events removed by retention announced at once (fewer when half the WebSocket
``queue_size`` is smaller); a pause of :data:`RETENTION_PAUSE` follows each batch but the
last, so a pass that removes thousands lets the clients send what they have queued instead
of overflowing their queues (they would be closed as too slow)."""
RETENTION_PAUSE = 0.1

# Changing any of these needs a new reader (a reconnect); everything else applies live.
_SOURCE_FIELDS = (
    "url",
    "detect_url",
    "kind",
    "enabled",
    "rtsp_transport",
    "tls_verify",
    "tls_ca",
    "snapshot_interval",
    "loop",
    "open_timeout",
    "read_timeout",
    "stall_timeout",
)


class CameraConflict(ValueError):
    """A camera with this id already exists."""

    def __init__(self, camera: str) -> None:
        super().__init__(f"a camera with id {camera!r} already exists")
        self.camera = camera


class CameraRefused(ValueError):
    """The security policy forbids a camera's source (``field`` says which URL)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


def check_source_policy(camera: CameraSettings, security: SecuritySettings) -> None:
    """Refuse what ``security`` can never allow (scheme/kind mismatch, a file outside
    ``media_dir``), before the camera is stored. Network checks happen when it connects."""
    from server.cameras.errors import SourceError
    from server.cameras.policy import plan_source

    for field in ("url", "detect_url"):
        url = getattr(camera, field)
        if url is None:
            continue
        try:
            plan_source(url, camera.kind, security)
        except SourceError as exc:
            if not exc.retry:
                raise CameraRefused(field, exc.reason) from None


class TooManyCameras(ValueError):
    """Adding a camera would exceed ``server.max_cameras``."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"server.max_cameras is {limit}; delete a camera first")
        self.limit = limit


class Reader(FrameSource, Protocol):
    """The part of :class:`server.cameras.CameraReader` the core uses: what the pipeline
    reads frames through, and the reader's lifecycle."""

    @property
    def status(self) -> CameraStatus: ...
    def start(self) -> None: ...
    def set_fps(self, fps: float | None) -> None: ...
    def on_status_change(self, callback: Callable[[Any], None]) -> None: ...
    async def stop(self, timeout: float = ...) -> None: ...  # noqa: ASYNC109 (its API)


ReaderFactory = Callable[[CameraSettings, SecuritySettings], Reader]


def _default_reader(camera: CameraSettings, security: SecuritySettings) -> Reader:
    from server.cameras import CameraReader

    reader: Reader = CameraReader(camera, security, detect_width=camera.detect.max_width)
    return reader


def fps_moved(announced: float, now: float) -> bool:
    """Whether a frame rate moved enough from the one last announced to announce it again:
    by 0.5 fps or a tenth, so the jitter of a steady camera stays quiet."""
    return abs(now - announced) >= max(0.5, 0.1 * announced)


@dataclass(frozen=True)
class CameraStatusView:
    """A camera's live status, as the API shows it."""

    state: CameraState
    fps: float = 0.0
    last_error: str | None = None
    dropped: int = 0
    reconnects: int = 0
    bad_frames: int = 0
    since: float | None = None
    source_kind: str | None = None
    frames: int = 0
    last_error_at: float | None = None
    last_frame_at: float | None = None
    width: int | None = None
    height: int | None = None


@dataclass
class _Runtime:
    settings: CameraSettings
    reader: Reader | None = None
    pipeline: CameraPipeline | None = None
    task: asyncio.Task[None] | None = None


class Core:
    """Everything long-lived behind the API; one per app."""

    def __init__(self, settings: Settings, reader_factory: ReaderFactory | None = None) -> None:
        self._settings = settings
        self._hub = Hub()
        self._reader_factory = reader_factory or _default_reader
        self.storage = Storage(settings.storage)
        self.metrics = Metrics(
            self._camera_samples,
            lambda: self.storage.writable,
            lambda: self.storage.lost_events,
        )
        self.storage.on_error = self._storage_failed
        self.storage.on_removed = self._announce_removed
        self.auth = TokenAuth(settings.server.auth.tokens)
        self.ids = UlidGenerator()
        self.started = time.monotonic()
        self._events_base = 0
        """Events stored when :meth:`start` counted them, plus ``storage.removed_events`` then
        (the deletions counted since are taken off again)."""
        self._events_started = 0
        """Events started since."""
        self._announced_fps: dict[str, float] = {}
        self.running = False
        self.should_exit: Callable[[], bool] = lambda: False
        """True once shutdown began (set by :func:`server.app.run` from uvicorn's flag)."""
        self._tg: asyncio.TaskGroup | None = None
        self._runtimes: dict[str, _Runtime] = {}
        self._lock = asyncio.Lock()
        self._hub.subscribe("core.events", self._count_events)

    @property
    def events_total(self) -> int:
        """Events in the store: those counted at start and started since, less those deleted
        since (the API's delete, retention)."""
        return max(0, self._events_base + self._events_started - self.storage.removed_events)

    # -- Services ----------------------------------------------------------------------------

    @property
    def hub(self) -> Hub:
        """Where the pipelines publish every message."""
        return self._hub

    @property
    def settings(self) -> Settings:
        """The current settings; ``cameras`` reflects live changes."""
        return self._settings

    def cameras(self) -> list[CameraInfo]:
        """Every camera with its current status."""
        out = []
        for rt in self._runtimes.values():
            cs = rt.settings
            out.append(
                CameraInfo(
                    id=cs.id,
                    name=cs.display_name,
                    status=self.status(cs.id).state,
                    zones=[z.name for z in cs.zones],
                    detect_enabled=cs.detect.enabled,
                )
            )
        return out

    def authenticate(self, token: str | None) -> Role | None:
        """The role ``token`` grants (``admin`` when auth is off), or ``None``."""
        return self.auth.role_of(token)

    async def events_after(
        self, event_id: str, cameras: set[str] | None = None, limit: int = 1000
    ) -> list[Event]:
        """Stored events after ``event_id``, oldest first."""
        return await self.storage.events_after(event_id, cameras, limit)

    async def set_detect_enabled(self, camera: str, enabled: bool) -> None:
        """Switch detection of ``camera`` on or off; persists."""
        await self.update_camera(camera, {"detect": {"enabled": enabled}})

    async def set_threshold(self, camera: str, threshold: int) -> None:
        """Set the detector's fixed threshold (0 = automatic); persists."""
        await self.update_camera(camera, {"detect": {"threshold": threshold}})

    async def event_snapshot(self, event_id: str) -> bytes | None:
        """The JPEG of an event's best frame, if stored."""
        return await self.storage.read_snapshot(event_id)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, tg: asyncio.TaskGroup) -> None:
        """Start every camera as tasks of ``tg`` (storage must be open)."""
        self._tg = tg
        events, removed = await self.storage.count_events_and_removed()
        self._events_base = events + removed
        self._events_started = 0
        stored = await self.storage.cameras.load()
        merged = {c.id: c for c in self._settings.cameras if c.id not in stored.deleted}
        for cam in stored.cameras:
            merged[cam.id] = cam
        cameras = list(merged.values())
        limit = self._settings.server.max_cameras
        if len(cameras) > limit:
            log.error("%d cameras stored, only the first %d start", len(cameras), limit)
            cameras = cameras[:limit]
        self._settings.cameras = cameras
        for cam in cameras:
            self._start_camera(cam)
        self.running = True
        log.info("started %d camera(s)", len(cameras))

    async def stop(self, grace: float = STOP_TIMEOUT) -> None:
        """Stop every camera, closing open events as ``interrupted``."""
        self.running = False
        runtimes = list(self._runtimes.values())
        await asyncio.gather(*(self._stop_runtime(rt, grace) for rt in runtimes))

    async def stats_loop(self, interval: float = STATS_INTERVAL) -> None:
        """Publish a :class:`StatsMessage` every ``interval`` seconds, and a
        :class:`CameraStatusMessage` for each camera whose frame rate moved since the last one
        announced (a status change announces itself at once)."""
        while True:
            await asyncio.sleep(interval)
            self._hub.publish(self.stats())
            for camera_id in list(self._runtimes):
                if fps_moved(self._announced_fps.get(camera_id, 0.0), self.status(camera_id).fps):
                    self._publish_status(camera_id)

    def stats(self) -> StatsMessage:
        """Current statistics."""
        views = [self.status(c) for c in self._runtimes]
        return StatsMessage(
            uptime=time.monotonic() - self.started,
            cameras_online=sum(v.state == "online" for v in views),
            cameras_total=len(views),
            clients=self.metrics.websocket_client_count,
            events_total=self.events_total,
        )

    # -- cameras -----------------------------------------------------------------------------

    def camera(self, camera_id: str) -> CameraSettings:
        """A camera's settings. Raises :class:`CameraNotFound`."""
        rt = self._runtimes.get(camera_id)
        if rt is None:
            raise CameraNotFound(camera_id)
        return rt.settings

    def pipeline(self, camera_id: str) -> CameraPipeline | None:
        """A camera's pipeline (``None`` while it is disabled). Raises :class:`CameraNotFound`."""
        self.camera(camera_id)
        return self._runtimes[camera_id].pipeline

    def status(self, camera_id: str) -> CameraStatusView:
        """A camera's live status. Raises :class:`CameraNotFound`."""
        rt = self._runtimes.get(camera_id)
        if rt is None:
            raise CameraNotFound(camera_id)
        if rt.reader is None:
            return CameraStatusView("offline", last_error="disabled")
        st = rt.reader.status
        return CameraStatusView(
            state=st.state,
            fps=st.fps,
            last_error=redact_text(st.last_error) if st.last_error else None,
            dropped=st.dropped,
            reconnects=st.reconnects,
            bad_frames=st.decode_errors,
            since=st.since,
            source_kind=st.kind,
            frames=st.frames,
            last_error_at=st.last_error_at,
            last_frame_at=st.last_frame_at,
            width=st.width,
            height=st.height,
        )

    def pipelines_running(self) -> bool:
        """Whether every enabled camera has a live pipeline task."""
        return all(
            rt.task is not None and not rt.task.done()
            for rt in self._runtimes.values()
            if rt.settings.enabled
        )

    def camera_ids(self) -> list[str]:
        """Camera ids in their configured order."""
        return list(self._runtimes)

    async def add_camera(self, camera: CameraSettings) -> CameraSettings:
        """Add and start a camera; persists.

        Raises :class:`CameraConflict` or :class:`TooManyCameras`.
        """
        async with self._lock:
            if camera.id in self._runtimes:
                raise CameraConflict(camera.id)
            limit = self._settings.server.max_cameras
            if len(self._runtimes) >= limit:
                raise TooManyCameras(limit)
            check_source_policy(camera, self._settings.security)
            clash = entity_clash([*self._settings.cameras, camera])
            if clash is not None:
                raise CameraRefused("id", clash)
            self._settings.cameras = [*self._settings.cameras, camera]
            self.storage.cameras.save(camera, len(self._settings.cameras) - 1)
            self._start_camera(camera)
            log.info("camera %s added", camera.id, extra={"url": redact_url(camera.url)})
        return camera

    async def update_camera(self, camera_id: str, changes: dict[str, Any]) -> CameraSettings:
        """Apply a partial change (nested sections merge, lists replace); persists.

        Raises :class:`CameraNotFound`, or pydantic's ``ValidationError`` (a ``ValueError``)
        with locations relative to the camera.
        """
        async with self._lock:
            rt = self._runtimes.get(camera_id)
            if rt is None:
                raise CameraNotFound(camera_id)
            old = rt.settings
            data = old.model_dump()
            for key, value in changes.items():
                if isinstance(value, dict) and isinstance(data.get(key), dict):
                    data[key] = {**data[key], **value}
                else:
                    data[key] = value
            for key in ("url", "detect_url"):
                data[key] = _keep_credentials(data.get(key), getattr(old, key))
            data["id"] = camera_id
            new = CameraSettings.model_validate(data)
            if new == old:
                return old
            if (new.url, new.detect_url, new.kind) != (old.url, old.detect_url, old.kind):
                check_source_policy(new, self._settings.security)
            cameras = [new if c.id == camera_id else c for c in self._settings.cameras]
            clash = entity_clash(cameras)
            if clash is not None:
                raise CameraRefused("zones", clash)
            self._settings.cameras = cameras
            position = list(self._runtimes).index(camera_id)
            self.storage.cameras.save(new, position)
            restart = any(getattr(new, f) != getattr(old, f) for f in _SOURCE_FIELDS) or (
                # The reader decodes JPEG sources reduced to this width.
                new.detect.max_width != old.detect.max_width
            )
            if restart:
                await self._stop_runtime(rt, STOP_TIMEOUT)
                self._start_camera(new)
            else:
                rt.settings = new
                if rt.reader is not None:
                    rt.reader.set_fps(new.detect.fps)
                if rt.pipeline is not None:
                    rt.pipeline.configure(new)
            self._publish_status(camera_id)
            log.info("camera %s updated%s", camera_id, " (reconnecting)" if restart else "")
        return new

    async def remove_camera(self, camera_id: str) -> None:
        """Stop and delete a camera (its events stay); persists."""
        async with self._lock:
            rt = self._runtimes.get(camera_id)
            if rt is None:
                raise CameraNotFound(camera_id)
            await self._stop_runtime(rt, STOP_TIMEOUT)
            del self._runtimes[camera_id]
            self._announced_fps.pop(camera_id, None)
            self._settings.cameras = [c for c in self._settings.cameras if c.id != camera_id]
            self.storage.cameras.delete(camera_id)
            self.storage.health.camera_removed(camera_id)
            self._hub.publish(
                CameraRemoved(camera=camera_id, zones=[z.name for z in rt.settings.zones])
            )
            log.info("camera %s deleted", camera_id)

    # -- internals ---------------------------------------------------------------------------

    def _start_camera(self, camera: CameraSettings) -> None:
        secrets.add_url(camera.url)
        secrets.add_url(camera.detect_url)
        rt = _Runtime(camera)
        self._runtimes[camera.id] = rt
        if not camera.enabled:
            self._publish_status(camera.id)
            return
        reader = self._reader_factory(camera, self._settings.security)
        rt.reader = reader
        reader.on_status_change(lambda _status: self._status_changed(camera.id, reader))
        # The pipeline installs its detector in the reader before the first frame.
        rt.pipeline = CameraPipeline(
            camera,
            reader,
            hub=self._hub,
            storage=self.storage,
            metrics=self.metrics,
            new_id=self.ids.new,
        )
        reader.start()
        if self._tg is None:
            raise RuntimeError("the core is not started")
        rt.task = self._tg.create_task(self._guard(rt.pipeline), name=f"camera:{camera.id}")
        self._publish_status(camera.id)

    async def _guard(self, pipeline: CameraPipeline) -> None:
        """Run a pipeline; a crash is logged and must never take the whole server down."""
        while True:
            try:
                await pipeline.run()
            except* Exception as group:
                # While shutting down the reader is stopped under the pipeline: not a crash.
                if self.running:
                    log.error(
                        "camera pipeline failed, restarting it",
                        exc_info=group.exceptions[0],
                        extra={"camera": pipeline.camera.id},
                    )
            if not self.running:
                return
            await asyncio.sleep(1.0)

    async def _stop_runtime(self, rt: _Runtime, grace: float) -> None:
        if rt.task is not None:
            rt.task.cancel()
            await asyncio.wait([rt.task], timeout=grace)
            rt.task = None
        if rt.pipeline is not None:
            rt.pipeline.close_event(interrupted=True)
        if rt.reader is not None:
            try:
                await rt.reader.stop(grace)
            except Exception:
                log.exception(
                    "camera reader did not stop cleanly", extra={"camera": rt.settings.id}
                )
        rt.reader, rt.pipeline = None, None

    def _status_changed(self, camera_id: str, reader: Reader) -> None:
        rt = self._runtimes.get(camera_id)
        # A stopped reader's last word must not overwrite its successor's status.
        if rt is not None and rt.reader is reader:
            self._publish_status(camera_id)

    def _publish_status(self, camera_id: str) -> None:
        view = self.status(camera_id)
        self._announced_fps[camera_id] = view.fps
        self._hub.publish(
            CameraStatusMessage(
                camera=camera_id, status=view.state, fps=view.fps, last_error=view.last_error
            )
        )

    def _count_events(self, message: ServerMessage) -> None:
        if isinstance(message, EventStartMessage):
            self._events_started += 1

    async def _announce_removed(self, removed: list[tuple[str, str]]) -> None:
        """Tell the front ends about deleted events (the API's delete, retention) with
        ``event_deleted``, so open dashboards drop them. Paced in batches: a retention pass may
        remove thousands."""
        batch = max(1, min(RETENTION_BATCH, self._settings.server.websocket.queue_size // 2))
        for start in range(0, len(removed), batch):
            if start:
                await asyncio.sleep(RETENTION_PAUSE)
            for event_id, camera in removed[start : start + batch]:
                self._hub.publish(EventDeletedMessage(id=event_id, camera=camera))

    def _storage_failed(self, kind: str) -> None:
        self.metrics.storage_errors.labels(kind=kind).inc()

    def _camera_samples(self) -> Iterator[CameraSample]:
        for cam_id, rt in list(self._runtimes.items()):
            view = self.status(cam_id)
            p = rt.pipeline
            yield CameraSample(
                camera=cam_id,
                up=view.state == "online",
                processed=p.processed if p else 0,
                dropped=view.dropped,
                reconnects=view.reconnects,
                events=p.events if p else 0,
                bad_frames=view.bad_frames,
            )


def _keep_credentials(new: Any, old: str | None) -> Any:
    """A URL sent back exactly as the API showed it (redacted) keeps its stored credentials.

    Any other URL with the mask for credentials is refused when it is validated
    (:func:`server.config.check_camera_url`): the stored ones must not go to another host."""
    if isinstance(new, str) and old is not None and new != old and new == redact_url(old):
        return old
    return new
