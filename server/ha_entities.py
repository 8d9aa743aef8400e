"""Home Assistant entity naming: the object ids MQTT discovery (:mod:`server.mqtt.discovery`)
gives each camera's and each zone's entities, and the check that no two cameras share one.

Kept apart from the MQTT front end so that validating a configuration does not import it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from server.config import CameraSettings

__all__ = ["CAMERA_ENTITIES", "camera_entity_id", "entity_clash", "zone_entity_id"]

CAMERA_ENTITIES = ("motion", "snapshot", "fps", "detect")
"""The Home Assistant entities (MQTT discovery) of every camera, by object id suffix."""


def camera_entity_id(camera_id: str, entity: str) -> str:
    """The object id of one of a camera's :data:`CAMERA_ENTITIES`."""
    return f"{camera_id}_{entity}"


def zone_entity_id(camera_id: str, zone: str) -> str:
    """The object id of a zone's motion entity."""
    return f"{camera_id}_zone_{zone}"


def entity_clash(cameras: Sequence[CameraSettings]) -> str | None:
    """Why two cameras' Home Assistant entities would share an object id (``a`` with a zone
    ``b_motion`` and a camera ``a_zone_b`` both make ``a_zone_b_motion``), or None."""
    seen: dict[str, str] = {}
    for camera in cameras:
        ids = [camera_entity_id(camera.id, e) for e in CAMERA_ENTITIES]
        ids += [zone_entity_id(camera.id, z.name) for z in camera.zones]
        for object_id in ids:
            other = seen.setdefault(object_id, camera.id)
            if other != camera.id:
                return (
                    f"cameras {other!r} and {camera.id!r} would share the Home Assistant "
                    f"entity {object_id!r}: rename a camera or a zone"
                )
    return None
