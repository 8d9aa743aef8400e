"""Home Assistant MQTT discovery configs for each camera and zone.

Each camera becomes one HA device with four entities (motion ``binary_sensor``,
snapshot ``image``, detection ``switch``, fps ``sensor``) plus one motion
``binary_sensor`` per zone. Configs are published retained on
``<discovery_prefix>/<component>/<node_id>/<object_id>/config``, where ``node_id``
is the topic prefix made safe; an empty retained payload on the same topic removes
the entity. The schema follows HA's documented MQTT discovery keys.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from server.ha_entities import camera_entity_id, zone_entity_id
from server.mqtt.payloads import OFF, OFFLINE, ON, ONLINE
from server.mqtt.topics import Topics

__all__ = ["CameraView", "discovery_configs", "encode_config"]

_MANUFACTURER = "motionhub"


@dataclass(frozen=True, slots=True)
class CameraView:
    """What MQTT needs to know about one configured camera."""

    id: str
    name: str
    zones: tuple[str, ...] = ()


def _availability(topics: Topics, camera: str) -> dict[str, Any]:
    # "all": an entity is available only while both the server and its camera are online.
    return {
        "availability": [
            {
                "topic": topics.available,
                "payload_available": ONLINE.decode(),
                "payload_not_available": OFFLINE.decode(),
            },
            {
                "topic": topics.status(camera),
                "payload_available": ONLINE.decode(),
                "payload_not_available": OFFLINE.decode(),
            },
        ],
        "availability_mode": "all",
    }


def _server_only(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` available whenever the server is, whatever its camera's status."""
    config["availability"] = config["availability"][:1]
    del config["availability_mode"]
    return config


def discovery_configs(
    topics: Topics, camera: CameraView, version: str
) -> dict[str, dict[str, Any]]:
    """Every discovery config of ``camera``, keyed by its config topic."""
    node = topics.node
    cam = camera.id
    device = {
        "identifiers": [f"{node}_{cam}"],
        "name": camera.name,
        "manufacturer": _MANUFACTURER,
        "model": "Camera",
        "sw_version": version,
    }
    origin = {"name": _MANUFACTURER, "sw_version": version}

    def entity(object_id: str, name: str, extra: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": name,
            "unique_id": f"{node}_{object_id}",
            "device": device,
            "origin": origin,
            **_availability(topics, cam),
            **extra,
        }

    binary = {"payload_on": ON.decode(), "payload_off": OFF.decode(), "device_class": "motion"}
    configs: dict[str, dict[str, Any]] = {
        topics.discovery("binary_sensor", camera_entity_id(cam, "motion")): entity(
            camera_entity_id(cam, "motion"), "Motion", {"state_topic": topics.motion(cam), **binary}
        ),
        # The latest event's image is stored by the server: it stays viewable while the
        # camera is offline (when it matters most: a camera that was cut off).
        topics.discovery("image", camera_entity_id(cam, "snapshot")): _server_only(
            entity(
                camera_entity_id(cam, "snapshot"),
                "Snapshot",
                {"image_topic": topics.snapshot(cam), "content_type": "image/jpeg"},
            )
        ),
        topics.discovery("sensor", camera_entity_id(cam, "fps")): entity(
            camera_entity_id(cam, "fps"),
            "Frame rate",
            {
                "state_topic": topics.fps(cam),
                "unit_of_measurement": "fps",
                "state_class": "measurement",
                "suggested_display_precision": 1,
                "entity_category": "diagnostic",
            },
        ),
    }
    # Detection can be switched while the camera is offline, so it follows the server only.
    switch = _server_only(
        entity(
            camera_entity_id(cam, "detect"),
            "Motion detection",
            {
                "command_topic": topics.command(cam, "detect"),
                "state_topic": topics.state(cam, "detect"),
                "payload_on": ON.decode(),
                "payload_off": OFF.decode(),
                "state_on": ON.decode(),
                "state_off": OFF.decode(),
                "qos": 1,
                "entity_category": "config",
                "icon": "mdi:motion-sensor",
            },
        )
    )
    configs[topics.discovery("switch", camera_entity_id(cam, "detect"))] = switch
    for zone in camera.zones:
        oid = zone_entity_id(cam, zone)
        configs[topics.discovery("binary_sensor", oid)] = entity(
            oid, f"{zone} motion", {"state_topic": topics.zone_motion(cam, zone), **binary}
        )
    return configs


def encode_config(config: dict[str, Any]) -> bytes:
    """The retained payload for one config (compact, stable key order)."""
    return json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
