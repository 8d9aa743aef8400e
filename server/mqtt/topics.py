"""Every MQTT topic motionhub uses, built in one place from the configured prefixes.

A camera id (``[a-z0-9_-]``) and a zone name (``[A-Za-z0-9_-]``) can never contain
``/``, ``+`` or ``#``, so they are safe as single topic levels.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

__all__ = ["CommandKind", "Topics", "node_id"]

CommandKind = Literal["detect", "threshold"]
_COMMAND_KINDS: tuple[CommandKind, ...] = ("detect", "threshold")
_NODE_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def node_id(prefix: str) -> str:
    """The topic prefix made safe as a discovery ``node_id`` (``[A-Za-z0-9_-]`` only)."""
    return _NODE_UNSAFE.sub("_", prefix)


@dataclass(frozen=True)
class Topics:
    """Topic names under ``prefix`` (state, events, commands) and ``discovery_prefix`` (HA)."""

    prefix: str = "motionhub"
    discovery_prefix: str = "homeassistant"

    @cached_property
    def node(self) -> str:
        """This server's discovery ``node_id`` and the start of every ``unique_id``."""
        return node_id(self.prefix)

    @property
    def available(self) -> str:
        """``online``/``offline`` of the server itself; also the last will."""
        return f"{self.prefix}/available"

    @property
    def events(self) -> str:
        """Event messages (JSON, QoS 1, not retained)."""
        return f"{self.prefix}/events"

    def status(self, camera: str) -> str:
        """``online``/``offline`` of one camera."""
        return f"{self.prefix}/{camera}/status"

    def motion(self, camera: str) -> str:
        """``ON`` while the camera has an open event."""
        return f"{self.prefix}/{camera}/motion"

    def zone_motion(self, camera: str, zone: str) -> str:
        """``ON`` while an open event of the camera has entered the zone."""
        return f"{self.prefix}/{camera}/zones/{zone}/motion"

    def snapshot(self, camera: str) -> str:
        """JPEG of the latest event's best frame."""
        return f"{self.prefix}/{camera}/snapshot"

    def fps(self, camera: str) -> str:
        """Frames per second the camera delivers, one decimal."""
        return f"{self.prefix}/{camera}/fps"

    def command(self, camera: str, kind: CommandKind) -> str:
        """Where clients send a ``detect`` or ``threshold`` command."""
        return f"{self.prefix}/{camera}/{kind}/set"

    def state(self, camera: str, kind: CommandKind) -> str:
        """Where the current ``detect`` or ``threshold`` value is kept (retained)."""
        return f"{self.prefix}/{camera}/{kind}/state"

    def camera_state_topics(self, camera: str, zones: list[str] | tuple[str, ...]) -> list[str]:
        """Every retained topic of one camera (to clear them when it is deleted)."""
        out = [
            self.status(camera),
            self.motion(camera),
            self.snapshot(camera),
            self.fps(camera),
            self.state(camera, "detect"),
            self.state(camera, "threshold"),
        ]
        out.extend(self.zone_motion(camera, z) for z in zones)
        return out

    @property
    def presence_filters(self) -> list[str]:
        """Subscriptions that receive, retained, the status of every camera and the motion of
        every zone an earlier run left on the broker (to find those deleted since)."""
        return [f"{self.prefix}/+/status", f"{self.prefix}/+/zones/+/motion"]

    def parse_presence(self, topic: str) -> tuple[str, str | None] | None:
        """``(camera, None)`` for a camera's status topic, ``(camera, zone)`` for a zone's
        motion topic, ``None`` for any other topic."""
        head = f"{self.prefix}/"
        if not topic.startswith(head):
            return None
        parts = topic[len(head) :].split("/")
        if len(parts) == 2 and parts[0] and parts[1] == "status":
            return parts[0], None
        if (
            len(parts) == 4
            and parts[0]
            and parts[1] == "zones"
            and parts[2]
            and parts[3] == "motion"
        ):
            return parts[0], parts[2]
        return None

    @property
    def command_filters(self) -> list[str]:
        """Subscriptions that receive every camera's commands."""
        return [f"{self.prefix}/+/{kind}/set" for kind in _COMMAND_KINDS]

    def parse_command(self, topic: str) -> tuple[str, CommandKind] | None:
        """``(camera, kind)`` for a command topic, ``None`` for any other topic."""
        head = f"{self.prefix}/"
        if not topic.startswith(head):
            return None
        parts = topic[len(head) :].split("/")
        if len(parts) != 3 or parts[2] != "set" or not parts[0]:
            return None
        for kind in _COMMAND_KINDS:
            if parts[1] == kind:
                return parts[0], kind
        return None

    @property
    def ha_status(self) -> str:
        """Home Assistant's birth and last-will topic."""
        return f"{self.discovery_prefix}/status"

    def discovery(self, component: str, object_id: str) -> str:
        """``<discovery_prefix>/<component>/<node_id>/<object_id>/config``."""
        return f"{self.discovery_prefix}/{component}/{self.node}/{object_id}/config"

    @property
    def discovery_filter(self) -> str:
        """Matches every discovery config this server owns (and only those)."""
        return f"{self.discovery_prefix}/+/{self.node}/+/config"

    def is_own_discovery(self, topic: str) -> bool:
        """Whether ``topic`` is a discovery config under this server's ``node_id``."""
        parts = topic.split("/")
        dparts = self.discovery_prefix.split("/")
        n = len(dparts)
        return (
            len(parts) == n + 4
            and parts[:n] == dparts
            and parts[n + 1] == self.node
            and parts[n + 3] == "config"
        )
