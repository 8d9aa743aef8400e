"""Home Assistant discovery, checked against the keys HA documents for each platform.

The key lists below come from HA's MQTT integration pages (binary_sensor.mqtt, sensor.mqtt,
switch.mqtt, image.mqtt and the MQTT discovery section); a key we send that HA does not
document would be silently ignored by HA, so it fails here instead.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from broker_harness import Recorder, publish, retained
from mqtt_harness import FakeServices, camera, data_dir, make_event, mqtt_settings, running

from server.messages import CameraStatusMessage, EventEndMessage, EventStartMessage
from server.mqtt import MqttService
from server.mqtt.discovery import CameraView, discovery_configs, encode_config
from server.mqtt.topics import Topics

COMMON = {
    "availability", "availability_mode", "availability_template", "availability_topic",
    "default_entity_id", "device", "enabled_by_default", "encoding", "entity_category",
    "entity_picture", "icon", "json_attributes_template", "json_attributes_topic", "name",
    "object_id", "origin", "platform", "qos", "unique_id",
}  # fmt: skip
PLATFORM_KEYS = {
    "binary_sensor": COMMON | {
        "device_class", "expire_after", "force_update", "off_delay", "payload_available",
        "payload_not_available", "payload_off", "payload_on", "state_topic", "value_template",
    },
    "sensor": COMMON | {
        "device_class", "expire_after", "force_update", "last_reset_value_template", "options",
        "payload_available", "payload_not_available", "suggested_display_precision",
        "state_class", "state_topic", "unit_of_measurement", "value_template",
    },
    "switch": COMMON | {
        "command_template", "command_topic", "device_class", "optimistic", "payload_off",
        "payload_on", "retain", "state_off", "state_on", "state_topic", "value_template",
    },
    "image": COMMON | {
        "content_type", "image_encoding", "image_topic", "url_template", "url_topic",
    },
}  # fmt: skip
REQUIRED = {
    "binary_sensor": {"state_topic"},
    "sensor": {"state_topic"},
    "switch": {"command_topic"},
    "image": set(),  # exactly one of image_topic / url_topic, checked below
}
DEVICE_KEYS = {
    "configuration_url", "connections", "hw_version", "identifiers", "manufacturer", "model",
    "model_id", "name", "serial_number", "suggested_area", "sw_version", "via_device",
}  # fmt: skip
ORIGIN_KEYS = {"name", "sw_version", "support_url"}
AVAILABILITY_KEYS = {"payload_available", "payload_not_available", "topic", "value_template"}
ID_CHARS = re.compile(r"^[a-zA-Z0-9_-]+$")


def validate(topic: str, disc_prefix: str, config: dict[str, Any]) -> str:
    """Check one config against HA's documented schema; returns its component."""
    assert topic.startswith(disc_prefix + "/")
    parts = topic[len(disc_prefix) + 1 :].split("/")
    assert len(parts) in (3, 4), topic
    assert parts[-1] == "config"
    component = parts[0]
    assert component in PLATFORM_KEYS, component
    for ident in parts[1:-1]:
        assert ID_CHARS.match(ident), f"node_id/object_id {ident!r} has characters HA rejects"
    unknown = set(config) - PLATFORM_KEYS[component]
    assert not unknown, f"{topic}: keys HA does not document: {unknown}"
    missing = REQUIRED[component] - set(config)
    assert not missing, f"{topic}: required keys missing: {missing}"
    if component == "image":
        assert ("image_topic" in config) != ("url_topic" in config)
        assert not ("content_type" in config and "url_topic" in config)
    # A device block only works with a unique_id, and needs identifiers or connections.
    assert isinstance(config["unique_id"], str)
    assert config["unique_id"]
    device = config["device"]
    assert set(device) <= DEVICE_KEYS
    assert device.get("identifiers") or device.get("connections")
    assert set(config["origin"]) <= ORIGIN_KEYS
    assert config["origin"]["name"]
    assert not ("availability" in config and "availability_topic" in config)
    for item in config.get("availability", []):
        assert set(item) <= AVAILABILITY_KEYS
        assert item["topic"]
    assert config.get("availability_mode", "latest") in ("all", "any", "latest")
    if "entity_category" in config:
        assert config["entity_category"] in ("config", "diagnostic")
    if "state_class" in config:
        assert config["state_class"] in ("measurement", "total", "total_increasing")
    return component


async def test_discovery_configs_follow_the_documented_schema(
    mosquitto, mqtt_prefix: str, tmp_path: Path
) -> None:
    services = FakeServices([camera("front", ["door", "Yard_2"], name="Front door"), camera("b")])
    settings = mqtt_settings(mosquitto.url, mqtt_prefix)
    service = MqttService(services, settings, data_dir(tmp_path))
    disc = settings.discovery.prefix
    t = Topics(mqtt_prefix, disc)
    async with running(service):
        assert await service.wait_idle()
        configs = await retained(mosquitto.url, f"{disc}/#")
        states = await retained(mosquitto.url, f"{mqtt_prefix}/#")

    parsed = {topic: json.loads(m.payload) for topic, m in configs.items()}
    components = sorted(validate(topic, disc, c) for topic, c in parsed.items())
    # Per camera: motion, snapshot, detection switch, fps; plus one motion sensor per zone.
    assert components == sorted(
        ["binary_sensor"] * 4 + ["image"] * 2 + ["switch"] * 2 + ["sensor"] * 2
    )
    unique_ids = [c["unique_id"] for c in parsed.values()]
    assert len(set(unique_ids)) == len(unique_ids)
    # Every topic a config points at carries a retained value (the image one once an event
    # has a snapshot), and every entity follows the server's availability.
    for c in parsed.values():
        for key in ("state_topic",):
            if key in c:
                assert c[key] in states, f"{key} {c[key]} has no retained value"
        assert c["availability"][0]["topic"] == t.available
        for item in c["availability"]:
            assert item["topic"] in states
    front = {c["unique_id"]: c for c in parsed.values() if c["device"]["name"] == "Front door"}
    motion = front[f"{t.node}_front_motion"]
    assert motion["device_class"] == "motion"
    assert motion["state_topic"] == t.motion("front")
    assert (motion["payload_on"], motion["payload_off"]) == ("ON", "OFF")
    assert [a["topic"] for a in motion["availability"]] == [t.available, t.status("front")]
    assert motion["availability_mode"] == "all"
    image = front[f"{t.node}_front_snapshot"]
    assert image["image_topic"] == t.snapshot("front")
    assert image["content_type"] == "image/jpeg"
    # The stored snapshot stays viewable while the camera is offline, like the switch.
    assert [a["topic"] for a in image["availability"]] == [t.available]
    switch = front[f"{t.node}_front_detect"]
    assert [a["topic"] for a in switch["availability"]] == [t.available]
    assert switch["command_topic"] == t.command("front", "detect")
    assert switch["state_topic"] == t.state("front", "detect")
    zone = front[f"{t.node}_front_zone_Yard_2"]
    assert zone["state_topic"] == t.zone_motion("front", "Yard_2")
    assert zone["device_class"] == "motion"
    assert all(m.retain for m in configs.values())
    assert len({json.dumps(c["device"], sort_keys=True) for c in front.values()}) == 1


async def test_configs_are_republished_when_home_assistant_comes_online(
    mosquitto, mqtt_prefix: str, tmp_path: Path
) -> None:
    services = FakeServices([camera("cam1", ["z"])])
    settings = mqtt_settings(mosquitto.url, mqtt_prefix)
    service = MqttService(services, settings, data_dir(tmp_path))
    disc = settings.discovery.prefix
    async with running(service):
        assert await service.wait_idle()
        async with Recorder(mosquitto.url, f"{disc}/+/+/+/config") as rec:
            await rec.wait_for(lambda ms: len(ms) == 5)
            assert all(m.retain for m in rec.messages)
            await publish(mosquitto.url, f"{disc}/status", b"online")
            # Sent again, live (so not flagged retained by the broker), one per entity.
            await rec.wait_for(lambda ms: len([m for m in ms if not m.retain]) == 5)
            await publish(mosquitto.url, f"{disc}/status", b"offline")
            await rec.quiet(0.3)
        assert len(rec.messages) == 10


async def test_deleted_cameras_and_zones_lose_their_entities(
    mosquitto, mqtt_prefix: str, tmp_path: Path
) -> None:
    services = FakeServices([camera("cam1", ["a", "b"]), camera("cam2")])
    settings = mqtt_settings(mosquitto.url, mqtt_prefix)
    service = MqttService(services, settings, data_dir(tmp_path))
    disc = settings.discovery.prefix
    t = Topics(mqtt_prefix, disc)
    async with running(service):
        assert await service.wait_idle()
        assert len(await retained(mosquitto.url, f"{disc}/#")) == 10
        # A zone is deleted: the core changes the settings and announces the camera again.
        cams = services.settings.cameras
        services.settings.cameras = [camera("cam1", ["a"]), cams[1]]
        services.hub.publish(CameraStatusMessage(camera="cam1", status="online"))
        assert await service.wait_idle()
        after_zone = await retained(mosquitto.url, f"{disc}/#")
        assert t.discovery("binary_sensor", "cam1_zone_b") not in after_zone
        assert t.discovery("binary_sensor", "cam1_zone_a") in after_zone
        assert len(after_zone) == 9
        assert t.zone_motion("cam1", "b") not in await retained(mosquitto.url, f"{mqtt_prefix}/#")

        services.remove_camera("cam2")
        assert await service.wait_idle()
        after_cam = await retained(mosquitto.url, f"{disc}/#")
    assert sorted(after_cam) == sorted(t for t in after_zone if "/cam2_" not in t)
    assert len(after_cam) == 5


async def test_stale_configs_from_an_earlier_run_are_removed(
    mosquitto, mqtt_prefix: str, tmp_path: Path
) -> None:
    settings = mqtt_settings(mosquitto.url, mqtt_prefix)
    disc = settings.discovery.prefix
    t = Topics(mqtt_prefix, disc)
    ghost = t.discovery("binary_sensor", "ghost_motion")
    other_server = Topics(f"{mqtt_prefix}x", disc).discovery("binary_sensor", "ghost_motion")
    await publish(mosquitto.url, ghost, b'{"name": "old"}', retain=True)
    await publish(mosquitto.url, other_server, b'{"name": "not ours"}', retain=True)
    services = FakeServices([camera("cam1")])
    service = MqttService(services, settings, data_dir(tmp_path))
    async with running(service):
        # The ghost arrives after the subscription, is seen as stale, and is cleared.
        for _ in range(20):
            assert await service.wait_idle()
            configs = await retained(mosquitto.url, f"{disc}/#")
            if ghost not in configs:
                break
    assert ghost not in configs
    assert other_server in configs
    await publish(mosquitto.url, other_server, b"", retain=True)


async def test_retained_state_of_cameras_and_zones_deleted_while_down_is_cleared(
    mosquitto, mqtt_prefix: str, tmp_path: Path
) -> None:
    t = Topics(mqtt_prefix)
    # An earlier run left these; since then camera "gone" and zone "old" of cam1 were deleted.
    left = {
        t.status("gone"): b"online",
        t.motion("gone"): b"ON",
        t.fps("gone"): b"5.0",
        t.state("gone", "detect"): b"ON",
        t.zone_motion("gone", "door"): b"OFF",
        t.zone_motion("cam1", "old"): b"ON",
        t.zone_motion("cam1", "keep"): b"ON",
    }
    for topic, payload in left.items():
        await publish(mosquitto.url, topic, payload, retain=True)
    services = FakeServices([camera("cam1", ["keep"])])
    service = MqttService(services, mqtt_settings(mosquitto.url, mqtt_prefix), data_dir(tmp_path))
    async with running(service):
        for _ in range(20):
            assert await service.wait_idle()
            states = await retained(mosquitto.url, f"{mqtt_prefix}/#")
            if not any("/gone/" in topic or "/old/" in topic for topic in states):
                break
    assert sorted(topic for topic in states if "/gone/" in topic or "/old/" in topic) == []
    # The live camera's own state and its remaining zone stay.
    assert t.status("cam1") in states
    assert t.zone_motion("cam1", "keep") in states


async def test_discovery_can_be_switched_off(mosquitto, mqtt_prefix: str, tmp_path: Path) -> None:
    settings = mqtt_settings(mosquitto.url, mqtt_prefix, discovery={"enabled": False})
    disc = settings.discovery.prefix
    t = Topics(mqtt_prefix, disc)
    # Left by an earlier run with discovery on: Home Assistant would keep these entities.
    services = FakeServices([camera("cam1", ["door"])])
    left = discovery_configs(t, CameraView("cam1", "cam1", ("door",)), "0")
    for topic, config in left.items():
        await publish(mosquitto.url, topic, encode_config(config), retain=True)
    other_server = Topics(f"{mqtt_prefix}x", disc).discovery("binary_sensor", "cam1_motion")
    await publish(mosquitto.url, other_server, b'{"name": "not ours"}', retain=True)
    service = MqttService(services, settings, data_dir(tmp_path))
    async with running(service):
        for _ in range(20):
            assert await service.wait_idle()
            configs = await retained(mosquitto.url, f"{disc}/#")
            if not set(left) & set(configs):
                break
        states = await retained(mosquitto.url, f"{mqtt_prefix}/#")
    assert sorted(set(left) & set(configs)) == []
    assert other_server in configs
    assert t.motion("cam1") in states
    assert t.ha_status not in service.subscriptions()
    await publish(mosquitto.url, other_server, b"", retain=True)


async def test_a_zone_deleted_during_an_event_stays_gone_when_the_event_ends(
    mosquitto: Any, mqtt_prefix: str, tmp_path: Path
) -> None:
    services = FakeServices([camera("cam1", ["a", "b"])])
    service = MqttService(services, mqtt_settings(mosquitto.url, mqtt_prefix), data_dir(tmp_path))
    t = Topics(mqtt_prefix)
    async with running(service):
        assert await service.wait_idle()
        ev = make_event("cam1", ["a", "b"])
        services.hub.publish(EventStartMessage(event=ev))
        assert await service.wait_idle()
        states = await retained(mosquitto.url, f"{mqtt_prefix}/#")
        assert states[t.zone_motion("cam1", "b")].payload == b"ON"
        # Zone b is deleted while the event is open: its retained state goes...
        services.settings.cameras = [camera("cam1", ["a"])]
        services.hub.publish(CameraStatusMessage(camera="cam1", status="online"))
        assert await service.wait_idle()
        assert t.zone_motion("cam1", "b") not in await retained(mosquitto.url, f"{mqtt_prefix}/#")
        # ...and the end of the event (which still names it) does not bring it back.
        services.hub.publish(EventEndMessage(event=ev.model_copy(update={"end": ev.start})))
        assert await service.wait_idle()
        states = await retained(mosquitto.url, f"{mqtt_prefix}/#")
    assert t.zone_motion("cam1", "b") not in states
    assert states[t.zone_motion("cam1", "a")].payload == b"OFF"
