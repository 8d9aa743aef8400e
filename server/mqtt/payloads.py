"""The typed MQTT wire: the JSON on ``<prefix>/events`` and the plain-text state payloads."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from server.messages import Event, EventEndMessage, EventMessage, EventStartMessage

__all__ = [
    "OFF",
    "OFFLINE",
    "ON",
    "ONLINE",
    "EventKind",
    "MqttEventMessage",
    "event_kind",
    "fps_payload",
    "switch_payload",
]

ON = b"ON"
OFF = b"OFF"
ONLINE = b"online"
OFFLINE = b"offline"

EventKind = Literal["start", "update", "end"]


class MqttEventMessage(BaseModel):
    """One message on ``<prefix>/events``.

    ``id`` is unique per message (a ULID, sortable by creation time): a message that
    is delivered twice after a broker or server restart carries the same ``id``, so a
    consumer de-duplicates on it. ``event.id`` is the event's own id, shared by its
    start, updates and end.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: EventKind
    id: str = Field(description="Unique message id (ULID); the same on a redelivery.")
    ts: float = Field(
        description="Unix seconds: capture time of the starting frame for 'start', "
        "otherwise when the server queued the message."
    )
    event: Event


def event_kind(message: EventMessage) -> EventKind:
    """``start``, ``update`` or ``end`` for a hub event message."""
    if isinstance(message, EventStartMessage):
        return "start"
    if isinstance(message, EventEndMessage):
        return "end"
    return "update"


def switch_payload(on: bool) -> bytes:
    """``ON`` or ``OFF``."""
    return ON if on else OFF


def fps_payload(fps: float) -> bytes:
    """Frames per second with one decimal, as HA's sensor expects a plain number."""
    return f"{max(fps, 0.0):.1f}".encode()
