"""A camera's events against the real server: an event ends while detection fails, a
snapshot written after its event ended is announced (to WebSocket and MQTT alike), and the
events a killed server left open are announced ended at the next start."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import numpy.typing as npt
import pytest
from broker_harness import Mosquitto, Recorder
from server_harness import serve, settings_for

from detector import MotionDetector
from detector.result import MotionResult
from server.config import Settings, StorageSettings
from server.events import utc
from server.ids import UlidGenerator
from server.messages import Event, EventEndMessage, EventStartMessage, EventUpdateMessage
from server.mqtt import MqttEventMessage
from server.mqtt.topics import Topics
from server.storage import Storage


def _with_mqtt(settings: Settings, mosquitto: Mosquitto, prefix: str) -> Settings:
    """``settings`` publishing to ``mosquitto`` under ``prefix``, without discovery."""
    mqtt = {"url": mosquitto.url, "topic_prefix": prefix, "discovery": {"enabled": False}}
    return Settings.model_validate({**settings.model_dump(mode="json"), "mqtt": mqtt})


async def test_an_event_ends_after_off_delay_while_every_detection_fails(
    tmp_path: Path, sim_cameras: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    cams = [
        {
            "id": "busy",
            "url": sim_cameras.mjpeg_url_for("busy"),
            "events": {"min_frames": 2, "off_delay": 1.0},
        }
    ]
    async with serve(settings_for(tmp_path, cams)) as srv:
        start = await srv.wait_for(EventStartMessage, within=30)

        # A detector failing on every frame cannot be caused from outside (every frame a
        # reader hands over is valid input for it), so this one failure is patched in.
        def broken(self: MotionDetector, luma: npt.NDArray[Any], ts: Any = None) -> MotionResult:
            raise RuntimeError("detector bug")

        monkeypatch.setattr(MotionDetector, "detect", broken)
        processed = await srv.analysed("busy")
        end = await srv.wait_for(EventEndMessage, lambda m: m.event.id == start.event.id, within=10)
        assert not end.event.interrupted
        # Frames kept coming all along (the camera is online); none was analysed since.
        assert (await srv.camera("busy"))["status"] == "online"
        assert await srv.analysed("busy") <= processed + 1


async def test_a_snapshot_written_after_its_event_ended_is_announced(
    tmp_path: Path, sim_cameras: Any, mosquitto: Mosquitto, mqtt_prefix: str
) -> None:
    cams = [
        {
            "id": "busy",
            "url": sim_cameras.mjpeg_url_for("busy"),
            "detect": {"enabled": False},
            "events": {"min_frames": 2},
        }
    ]
    settings = _with_mqtt(settings_for(tmp_path, cams), mosquitto, mqtt_prefix)
    motion_topic = Topics(mqtt_prefix).motion("busy")
    async with Recorder(mosquitto.url, motion_topic) as rec, serve(settings) as srv:
        await srv.wait_online("busy")
        # Hold the thread that writes snapshots, so the event's first snapshot is written
        # only after the event has ended (as when a main stream opened on demand is slow).
        gate = threading.Event()
        held = asyncio.get_running_loop().run_in_executor(
            srv.core.storage.snapshots.thread, gate.wait
        )
        try:
            patch = await srv.client.patch("/api/cameras/busy", json={"detect": {"enabled": True}})
            assert patch.status_code == 200, patch.text
            start = await srv.wait_for(EventStartMessage, within=20)
            await rec.wait_value(motion_topic, b"ON")
            patch = await srv.client.patch("/api/cameras/busy", json={"detect": {"enabled": False}})
            assert patch.status_code == 200, patch.text
            end = await srv.wait_for(EventEndMessage, lambda m: m.event.id == start.event.id)
            assert not end.event.has_snapshot
        finally:
            gate.set()
        await held
        update = await srv.wait_for(
            EventUpdateMessage,
            lambda m: m.event.id == start.event.id and m.event.has_snapshot,
            within=10,
        )
        assert update.event.end == end.event.end
        stored = (await srv.client.get(f"/api/events/{start.event.id}")).json()
        assert stored["has_snapshot"]
        pipeline = srv.core.pipeline("busy")
        assert pipeline is not None
        assert not pipeline._ended_bare
        # The ended event stays ended for MQTT: motion is not switched back on by the update.
        await rec.quiet(0.5)
        assert rec.last(motion_topic) == b"OFF"


async def test_events_left_open_by_a_killed_server_are_announced_ended_at_the_next_start(
    tmp_path: Path, mosquitto: Mosquitto, mqtt_prefix: str
) -> None:
    # What a killed server leaves behind: an event that started (and was announced) but
    # never ended. The storage is dropped without closing, as a SIGKILL would.
    data = tmp_path / "data"
    left = Storage(StorageSettings(path=data))
    await left.open()
    start = time.time() - 60
    open_event = Event(
        id=UlidGenerator().new(start), camera="gone", start=utc(start), peak_score=0.3
    )
    left.save_event(open_event, start + 7)
    await left.flush()
    left._db_thread.shutdown(wait=True)
    left.lock.release()  # what the kernel does for a killed process

    settings = _with_mqtt(settings_for(data, []), mosquitto, mqtt_prefix)
    events_topic = Topics(mqtt_prefix).events
    async with Recorder(mosquitto.url, events_topic) as rec, serve(settings):
        await rec.wait_for(bool, within=10, what="an event message")
        messages = [MqttEventMessage.model_validate_json(m.payload) for m in rec.on(events_topic)]
    (ended,) = messages
    assert ended.type == "end"
    assert ended.event.id == open_event.id
    assert ended.event.interrupted
    assert ended.event.end is not None
    assert ended.event.end.timestamp() == pytest.approx(start + 7)
