"""Every topic and payload, with QoS and retained flags seen by real subscribers."""

from __future__ import annotations

import json
from pathlib import Path

from broker_harness import Recorder, retained
from mqtt_harness import JPEG, FakeServices, camera, data_dir, make_event, mqtt_settings, running

from server.messages import (
    CameraStatusMessage,
    EventEndMessage,
    EventStartMessage,
    EventUpdateMessage,
    MotionMessage,
)
from server.mqtt import MqttEventMessage, MqttService
from server.mqtt.link import LinkState
from server.mqtt.topics import Topics


async def test_state_topics_are_retained_and_events_are_not(
    mosquitto, mqtt_prefix: str, tmp_path: Path
) -> None:
    services = FakeServices([camera("front", ["door", "path"]), camera("back")])
    service = MqttService(services, mqtt_settings(mosquitto.url, mqtt_prefix), data_dir(tmp_path))
    t = Topics(mqtt_prefix)
    async with running(service), Recorder(mosquitto.url, f"{mqtt_prefix}/#") as live:
        assert service.state is LinkState.CONNECTED
        hub = services.hub
        hub.publish(CameraStatusMessage(camera="front", status="online", fps=12.46))
        hub.publish(CameraStatusMessage(camera="back", status="offline", fps=0.0))
        # A raw per-frame motion analysis is for the WebSocket; MQTT follows events.
        hub.publish(MotionMessage(camera="front", ts=1.0, motion=True, score=0.3))
        ev = make_event("front", ["door"])
        hub.publish(EventStartMessage(event=ev, ts=1234.5))
        await live.wait_value(t.motion("front"), b"ON")
        await live.wait_value(t.zone_motion("front", "door"), b"ON")
        assert live.last(t.zone_motion("front", "path")) == b"OFF"

        services.snapshots[ev.id] = JPEG
        ev2 = ev.model_copy(
            update={"zones": ["door", "path"], "has_snapshot": True, "peak_score": 0.8}
        )
        hub.publish(EventUpdateMessage(event=ev2))
        await live.wait_value(t.snapshot("front"), JPEG)
        await live.wait_value(t.zone_motion("front", "path"), b"ON")

        ev3 = ev2.model_copy(update={"end": ev2.start})
        hub.publish(EventEndMessage(event=ev3))
        await live.wait_for(lambda ms: len([m for m in ms if m.topic == t.events]) == 3)
        await live.wait_value(t.motion("front"), b"OFF")
        await live.wait_value(t.zone_motion("front", "door"), b"OFF")
        await live.quiet(0.2)

        # Events: QoS 1, not retained, typed JSON, unique message ids, in order.
        events = [MqttEventMessage.model_validate_json(m.payload) for m in live.on(t.events)]
        assert [e.type for e in events] == ["start", "update", "end"]
        assert len({e.id for e in events}) == 3
        assert {e.event.id for e in events} == {ev.id}
        assert events[0].ts == 1234.5
        assert events[1].event.zones == ["door", "path"]
        assert all(m.qos == 1 and not m.retain for m in live.on(t.events))
        assert [m.payload for m in live.on(t.motion("front"))][-2:] == [b"ON", b"OFF"]

        fresh = await retained(mosquitto.url, f"{mqtt_prefix}/#")
        expected = {
            t.available: b"online",
            t.status("front"): b"online",
            t.status("back"): b"offline",
            t.fps("front"): b"12.5",
            t.fps("back"): b"0.0",
            t.motion("front"): b"OFF",
            t.motion("back"): b"OFF",
            t.zone_motion("front", "door"): b"OFF",
            t.zone_motion("front", "path"): b"OFF",
            t.snapshot("front"): JPEG,
            t.state("front", "detect"): b"ON",
            t.state("back", "detect"): b"ON",
            t.state("front", "threshold"): b"0",
            t.state("back", "threshold"): b"0",
        }
        assert {k: v.payload for k, v in fresh.items()} == expected
        assert t.events not in fresh

    # A clean stop leaves "offline" behind, retained.
    after = await retained(mosquitto.url, t.available)
    assert after[t.available].payload == b"offline"
    assert after[t.available].retain


async def test_event_payload_matches_documented_shape(
    mosquitto, mqtt_prefix: str, tmp_path: Path
) -> None:
    services = FakeServices([camera("cam1")])
    service = MqttService(services, mqtt_settings(mosquitto.url, mqtt_prefix), data_dir(tmp_path))
    t = Topics(mqtt_prefix)
    async with running(service), Recorder(mosquitto.url, t.events) as live:
        ev = make_event("cam1", boxes=[(0.1, 0.2, 0.3, 0.4)])
        services.hub.publish(EventStartMessage(event=ev, ts=99.0))
        await live.wait_for(lambda ms: len(ms) == 1)
    doc = json.loads(live.messages[0].payload)
    assert set(doc) == {"type", "id", "ts", "event"}
    assert doc["type"] == "start"
    assert len(doc["id"]) == 26
    assert doc["event"]["id"] == ev.id
    assert doc["event"]["camera"] == "cam1"
    assert doc["event"]["end"] is None
    assert doc["event"]["boxes"] == [[0.1, 0.2, 0.3, 0.4]]


async def test_deleted_camera_clears_its_retained_topics(
    mosquitto, mqtt_prefix: str, tmp_path: Path
) -> None:
    services = FakeServices([camera("keep"), camera("gone", ["z1"])])
    service = MqttService(services, mqtt_settings(mosquitto.url, mqtt_prefix), data_dir(tmp_path))
    t = Topics(mqtt_prefix)
    async with running(service):
        assert await service.wait_idle()
        before = await retained(mosquitto.url, f"{mqtt_prefix}/gone/#")
        assert t.zone_motion("gone", "z1") in before
        services.remove_camera("gone")
        assert await service.wait_idle()
        after_gone = await retained(mosquitto.url, f"{mqtt_prefix}/gone/#")
        after_keep = await retained(mosquitto.url, f"{mqtt_prefix}/keep/#")
    assert after_gone == {}
    assert t.status("keep") in after_keep
