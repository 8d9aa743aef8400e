"""The typed wire: every message the server sends or accepts over WebSocket and MQTT.

Each message is a pydantic model with a ``type`` literal. The same models are
published on the internal :class:`server.bus.Hub`, serialised once, and documented
in ``docs/websocket.md`` and ``docs/mqtt.md``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from server.ids import ULID_PATTERN

__all__ = [
    "AuthMessage",
    "Box",
    "CameraInfo",
    "CameraRemoved",
    "CameraState",
    "CameraStatusMessage",
    "ClientMessage",
    "ErrorMessage",
    "Event",
    "EventDeletedMessage",
    "EventEndMessage",
    "EventMessage",
    "EventStartMessage",
    "EventUpdateMessage",
    "HelloMessage",
    "MotionMessage",
    "ResumeMessage",
    "ResumedMessage",
    "ServerMessage",
    "StatsMessage",
    "SubscribeMessage",
    "SubscribedMessage",
    "WsReplyMessage",
    "client_message_adapter",
]

CameraState = Literal["starting", "online", "offline"]
Box = tuple[float, float, float, float]
"""(x1, y1, x2, y2) normalised to 0..1 of the frame."""


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Event(_Wire):
    """A motion event as stored and delivered."""

    id: str = Field(description="Unique and sortable by start time (ULID).")
    camera: str
    zones: list[str] = Field(default_factory=list, description="Zones the motion entered.")
    start: datetime
    end: datetime | None = Field(default=None, description="None while the event is open.")
    peak_score: float = Field(ge=0, le=1)
    boxes: list[Box] = Field(default_factory=list, description="Boxes at the peak frame.")
    has_snapshot: bool = False
    interrupted: bool = Field(
        default=False, description="The server stopped before the event ended normally."
    )


class CameraInfo(_Wire):
    """A camera as shown to clients (URL never included)."""

    id: str
    name: str
    status: CameraState
    zones: list[str] = Field(default_factory=list)
    detect_enabled: bool = True


class HelloMessage(_Wire):
    """First message after a WebSocket is accepted."""

    type: Literal["hello"] = "hello"
    version: str
    cameras: list[CameraInfo]
    role: str | None = Field(default=None, description="What the client's token grants.")


class CameraStatusMessage(_Wire):
    """A camera went starting/online/offline, or its stats changed."""

    type: Literal["camera_status"] = "camera_status"
    camera: str
    status: CameraState
    fps: float = 0.0
    last_error: str | None = None


class MotionMessage(_Wire):
    """The latest motion analysis of one camera (rate limited; only the newest matters)."""

    type: Literal["motion"] = "motion"
    camera: str
    ts: float = Field(description="Capture time of the analysed frame, Unix seconds.")
    motion: bool
    score: float = Field(ge=0, le=1)
    boxes: list[Box] = Field(default_factory=list)
    zones: dict[str, bool] = Field(default_factory=dict)


class EventStartMessage(_Wire):
    """An event opened."""

    type: Literal["event_start"] = "event_start"
    event: Event
    ts: float = Field(default=0.0, description="Capture time of the frame that started it.")


class EventUpdateMessage(_Wire):
    """An open event changed: new zones, higher peak, better snapshot."""

    type: Literal["event_update"] = "event_update"
    event: Event


class EventEndMessage(_Wire):
    """An event closed."""

    type: Literal["event_end"] = "event_end"
    event: Event


class EventDeletedMessage(_Wire):
    """A stored event was deleted (``DELETE /api/events/{id}``, or by retention): clients
    drop it."""

    type: Literal["event_deleted"] = "event_deleted"
    id: str = Field(description="The deleted event's id (ULID).")
    camera: str


class StatsMessage(_Wire):
    """Periodic server statistics."""

    type: Literal["stats"] = "stats"
    uptime: float
    cameras_online: int
    cameras_total: int
    clients: int
    events_total: int


class CameraRemoved(_Wire):
    """A camera was deleted (internal; lets MQTT clear its retained topics)."""

    type: Literal["camera_removed"] = "camera_removed"
    camera: str
    zones: list[str] = Field(default_factory=list)


EventMessage = EventStartMessage | EventUpdateMessage | EventEndMessage
ServerMessage = (
    HelloMessage
    | CameraStatusMessage
    | MotionMessage
    | EventStartMessage
    | EventUpdateMessage
    | EventEndMessage
    | EventDeletedMessage
    | StatsMessage
    | CameraRemoved
)


class ErrorMessage(_Wire):
    """WebSocket only: a client message was rejected; the connection stays open."""

    type: Literal["error"] = "error"
    code: str = Field(description="Machine-readable reason, e.g. invalid_message.")
    message: str = Field(description="Human-readable explanation.")


class SubscribedMessage(_Wire):
    """WebSocket only: a ``subscribe`` took effect; later messages follow the new filter."""

    type: Literal["subscribed"] = "subscribed"
    cameras: list[str] | None


class ResumedMessage(_Wire):
    """WebSocket only: the replay asked for by ``resume`` is complete."""

    type: Literal["resumed"] = "resumed"
    since: str
    count: int = Field(ge=0, description="Event messages replayed.")
    more: bool = Field(description="The replay hit its limit; resume again from the last id.")


WsReplyMessage = ErrorMessage | SubscribedMessage | ResumedMessage
"""Replies addressed to one WebSocket client; never published on the hub."""


class AuthMessage(_Wire):
    """Client: authenticate (browsers cannot set headers)."""

    type: Literal["auth"]
    token: str = Field(max_length=512)


class SubscribeMessage(_Wire):
    """Client: only receive these cameras (``null`` for all)."""

    type: Literal["subscribe"]
    cameras: list[str] | None = Field(default=None, max_length=1024)


RESUME_SINCE_PATTERN = f"^$|{ULID_PATTERN}"
"""An event id, or nothing (from the oldest stored event)."""


class ResumeMessage(_Wire):
    """Client: replay stored events after this event id."""

    type: Literal["resume"]
    since: str = Field(
        pattern=RESUME_SINCE_PATTERN,
        description='The last event id seen (a ULID), or "" for every stored event.',
    )


ClientMessage = Annotated[
    AuthMessage | SubscribeMessage | ResumeMessage, Field(discriminator="type")
]
client_message_adapter: TypeAdapter[AuthMessage | SubscribeMessage | ResumeMessage] = TypeAdapter(
    ClientMessage
)
