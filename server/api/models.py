"""Request and response bodies of the REST API (every route declares one of these)."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from detector import Polygon, Zone
from server.config import CameraKind, CameraSettings, DetectSettings, EventSettings
from server.core import CameraStatusView
from server.messages import CameraState, Event
from server.redact import redact_url

__all__ = [
    "CAMERA_READ_ONLY",
    "CameraList",
    "CameraOut",
    "CameraPatch",
    "ErrorBody",
    "EventPage",
    "Health",
    "Readiness",
    "SystemStatus",
]


class ErrorBody(BaseModel):
    """Any non-validation error."""

    detail: str = Field(description="What went wrong, for people.")


def _partial(model: type[BaseModel], name: str) -> type[BaseModel]:
    """``model`` with every field optional (same bounds), for PATCH bodies."""
    fields: dict[str, Any] = {}
    for field_name, info in model.model_fields.items():
        optional = copy.copy(info)
        optional.default = None
        optional.default_factory = None
        annotation: Any = info.annotation
        fields[field_name] = (annotation | None, optional)
    return create_model(
        name,
        __config__=ConfigDict(extra="forbid"),
        __doc__=f"Any subset of {model.__name__}; omitted keys keep their value.",
        **fields,
    )


if TYPE_CHECKING:
    DetectPatch = BaseModel
    EventsPatch = BaseModel
else:
    DetectPatch = _partial(DetectSettings, "DetectPatch")
    EventsPatch = _partial(EventSettings, "EventsPatch")


class CameraPatch(BaseModel):
    """A partial camera update. Sections (``detect``, ``events``) merge key by key; ``zones``
    and ``masks`` replace the whole list. A ``url`` sent back exactly as the API showed it
    (with ``***`` for the credentials) keeps the stored credentials. The whole camera object
    GET returns may be sent back: its live state (:data:`CAMERA_READ_ONLY`) is ignored, and
    ``id`` must be the camera's own."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(
        default=None, description="The camera's own id, as GET shows it; an id cannot change."
    )
    name: str | None = Field(default=None, max_length=128)
    url: str | None = Field(default=None, max_length=2048)
    detect_url: str | None = Field(default=None, max_length=2048)
    kind: CameraKind | None = None
    enabled: bool | None = None
    rtsp_transport: Literal["tcp", "udp"] | None = None
    tls_verify: bool | None = None
    tls_ca: str | None = Field(default=None, max_length=4096)
    snapshot_interval: float | None = Field(default=None, ge=0.05, le=3600)
    loop: bool | None = None
    open_timeout: float | None = Field(default=None, gt=0, le=300)
    read_timeout: float | None = Field(default=None, gt=0, le=300)
    stall_timeout: float | None = Field(default=None, gt=0, le=3600)
    detect: DetectPatch | None = None
    events: EventsPatch | None = None
    zones: list[Zone] | None = Field(default=None, max_length=32)
    masks: list[Polygon] | None = Field(default=None, max_length=32)

    @model_validator(mode="before")
    @classmethod
    def _ignore_read_only(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if k not in CAMERA_READ_ONLY}
        return data


class CameraOut(BaseModel):
    """A camera with its live status. URLs are always redacted."""

    id: str
    name: str
    url: str = Field(description="Main stream, credentials replaced by ***.")
    detect_url: str | None = Field(description="Detection substream, redacted like url.")
    kind: CameraKind
    enabled: bool
    status: CameraState
    fps: float = Field(description="Frames per second the camera currently delivers.")
    last_error: str | None = Field(description="Why it is offline, redacted.")
    dropped: int = Field(description="Frames the pipeline could not take.")
    bad_frames: int = Field(
        description="Corrupt or truncated frames (or runs of garbage) skipped; the camera stays up."
    )
    reconnects: int
    since: float | None = Field(
        default=None, description="When status last changed (Unix time); null while disabled."
    )
    source_kind: str | None = Field(
        default=None,
        description="The source kind in use (rtsp, mjpeg, snapshot, file, v4l2); "
        "null until the source is opened.",
    )
    frames: int = Field(default=0, description="Frames decoded since the camera started.")
    last_error_at: float | None = Field(
        default=None, description="When last_error happened (Unix time)."
    )
    last_frame_at: float | None = Field(
        default=None, description="When the newest frame was decoded (Unix time)."
    )
    width: int | None = Field(default=None, description="Frame width in pixels, once known.")
    height: int | None = Field(default=None, description="Frame height in pixels, once known.")
    motion: bool = Field(description="Motion in the last analysed frame.")
    event_active: bool = Field(description="An event of this camera is open.")
    rtsp_transport: Literal["tcp", "udp"]
    snapshot_interval: float
    loop: bool
    open_timeout: float
    read_timeout: float
    stall_timeout: float
    detect: DetectSettings
    events: EventSettings
    zones: list[Zone]
    masks: list[Polygon]

    @classmethod
    def build(
        cls,
        cs: CameraSettings,
        live: CameraStatusView,
        *,
        motion: bool = False,
        event_active: bool = False,
    ) -> CameraOut:
        """From settings plus live status."""
        return cls(
            id=cs.id,
            name=cs.display_name,
            url=redact_url(cs.url),
            detect_url=redact_url(cs.detect_url) if cs.detect_url else None,
            kind=cs.kind,
            enabled=cs.enabled,
            status=live.state,
            fps=round(live.fps, 2),
            last_error=live.last_error,
            dropped=live.dropped,
            bad_frames=live.bad_frames,
            reconnects=live.reconnects,
            since=live.since,
            source_kind=live.source_kind,
            frames=live.frames,
            last_error_at=live.last_error_at,
            last_frame_at=live.last_frame_at,
            width=live.width,
            height=live.height,
            motion=motion,
            event_active=event_active,
            rtsp_transport=cs.rtsp_transport,
            snapshot_interval=cs.snapshot_interval,
            loop=cs.loop,
            open_timeout=cs.open_timeout,
            read_timeout=cs.read_timeout,
            stall_timeout=cs.stall_timeout,
            detect=cs.detect,
            events=cs.events,
            zones=list(cs.zones),
            masks=list(cs.masks),
        )


CAMERA_READ_ONLY = frozenset(CameraOut.model_fields) - frozenset(CameraPatch.model_fields)
"""The live state GET shows with a camera (``status``, ``fps``...): ignored in a PATCH, so a
client can send back the object it read."""


class CameraList(BaseModel):
    """Every camera, in configured order."""

    cameras: list[CameraOut]


class EventPage(BaseModel):
    """One page of events, newest first."""

    events: list[Event]
    next_cursor: str | None = Field(
        description="Pass as ``cursor`` for the next (older) page; null on the last page."
    )


class Health(BaseModel):
    """Liveness."""

    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    """Readiness and what it is made of."""

    ready: bool
    cameras: bool = Field(description="Every enabled camera has a running pipeline.")
    storage: bool = Field(description="The database and snapshot directory accept writes.")
    mqtt: bool | None = Field(description="Connected to the broker; null when MQTT is off.")


class StorageStatus(BaseModel):
    """Storage health, with the last error when writes fail."""

    writable: bool
    db_error: str | None = Field(
        description="The last database write failure, until a write succeeds with no refused"
        " events still held; or what the readiness check found, until a check passes."
    )
    snapshot_error: str | None = Field(
        description="The last snapshot write failure, until a snapshot is written again; or"
        " what the readiness check found, until a check passes."
    )
    events: int
    unsaved_events: int = Field(
        description="Events the database refused, held and written again every few seconds."
    )
    lost_events: int = Field(
        description="Events given up on since the server started: while the database refused"
        " writes, more than 10,000 events were held, and the oldest were dropped."
    )


class SystemStatus(BaseModel):
    """An overview of the running server."""

    version: str
    uptime: float
    auth: bool = Field(description="Whether API tokens are required.")
    cameras_total: int
    cameras_online: int
    websocket_clients: int
    mqtt: bool | None = Field(description="Connected to the broker; null without MQTT.")
    mqtt_error: str | None = Field(
        default=None,
        description="While MQTT is not connected: the last failure (broker host and port, "
        "never credentials).",
    )
    storage: StorageStatus
