"""What the WebSocket and MQTT front ends need from the server core.

The core (:mod:`server.app`) provides one object satisfying :class:`Services`; the
front ends depend on this protocol only, so they can be tested and reasoned about
without the camera pipeline.
"""

from __future__ import annotations

from typing import Protocol

from server.bus import Hub
from server.config import Settings
from server.messages import CameraInfo, Event

__all__ = ["CameraNotFound", "Role", "Services"]

Role = str  # "admin" | "viewer"


class CameraNotFound(LookupError):
    """No camera has this id."""

    def __init__(self, camera: str) -> None:
        super().__init__(f"no camera with id {camera!r}")
        self.camera = camera


class Services(Protocol):
    """The server core as seen by its front ends."""

    @property
    def hub(self) -> Hub:
        """Where the pipeline publishes every message."""
        ...

    @property
    def settings(self) -> Settings:
        """The current settings (cameras included, reflecting live changes)."""
        ...

    @property
    def running(self) -> bool:
        """True once the core has started every camera (those added through the API
        included) and until it stops; before that the camera list may be incomplete."""
        ...

    def cameras(self) -> list[CameraInfo]:
        """Every configured camera with its current status."""
        ...

    def authenticate(self, token: str | None) -> Role | None:
        """The role a token grants (constant-time compare), ``"admin"`` when auth is off,
        or ``None`` when the token is missing or wrong."""
        ...

    async def events_after(
        self, event_id: str, cameras: set[str] | None = None, limit: int = 1000
    ) -> list[Event]:
        """Stored events with an id greater than ``event_id``, oldest first."""
        ...

    async def set_detect_enabled(self, camera: str, enabled: bool) -> None:
        """Switch motion detection of ``camera``; persists. Raises :class:`CameraNotFound`."""
        ...

    async def set_threshold(self, camera: str, threshold: int) -> None:
        """Set the detector threshold of ``camera``; persists. Raises :class:`CameraNotFound`
        or ``ValueError`` when out of bounds."""
        ...

    async def event_snapshot(self, event_id: str) -> bytes | None:
        """The JPEG of an event's best frame, if stored."""
        ...
