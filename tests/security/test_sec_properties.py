"""Property tests the MQTT and WebSocket suites leave open: any topic, and any command or
client message sent to the *real* app (the real core and SQLite behind it).

Each bad input is refused with a clear error and changes nothing; valid ones are applied;
the server stays up.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion
from sec_harness import VIEWER, ThreadedServer, make_settings
from websockets.sync.client import connect

from server.events import utc
from server.messages import RESUME_SINCE_PATTERN, Event
from server.mqtt.commands import CommandError, parse_threshold
from server.mqtt.topics import Topics

levels = st.text(alphabet="abc/+#-_set$ detcthrsholdamo", max_size=40)


@given(st.one_of(levels, st.text(max_size=60)))
def test_only_exact_command_topics_parse(topic: str) -> None:
    t = Topics("motionhub")
    parsed = t.parse_command(topic)
    if parsed is None:
        return
    camera, kind = parsed
    # What parses is exactly a command topic, rebuilt the same way, with one plain level
    # for the camera: no wildcard or separator can sneak into the id.
    assert t.command(camera, kind) == topic
    assert camera
    assert not set(camera) & {"/", "+", "#"}


# ---- MQTT commands against the real app ----------------------------------------------------

payloads = st.one_of(
    st.binary(max_size=40),
    st.integers(-1000, 1000).map(lambda n: str(n).encode()),
    st.sampled_from([b"ON", b"off", b" 42 ", b"0x10", b"1e3", b"+7", b"", "\u0661\u0662".encode()]),
)


@pytest.mark.slow
def test_mqtt_commands_against_the_real_core(
    tmp_path: Path, mosquitto: Any, mqtt_prefix: str
) -> None:
    cams = [{"id": "cam1", "url": "rtsp://127.0.0.1:9/cam1", "enabled": False}]
    mqtt = {"url": mosquitto.url, "topic_prefix": mqtt_prefix, "discovery": {"enabled": False}}
    t = Topics(mqtt_prefix)
    sentinel = itertools.count(100)
    with ThreadedServer(make_settings(tmp_path, cams, mqtt=mqtt)) as server:
        assert server.running is not None
        core = server.running.core
        service = server.running.app.state.mqtt
        for _ in range(200):
            if service.connected.is_set():
                break
            time.sleep(0.05)
        client = paho.Client(CallbackAPIVersion.VERSION2)
        host, port = mosquitto.url.removeprefix("mqtt://").split(":")
        client.connect(host, int(port))
        client.loop_start()

        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
        @given(st.lists(payloads, max_size=12))
        def check(batch: list[bytes]) -> None:
            applied, rejected = service.commands_applied, service.commands_rejected
            valid = 0
            for payload in batch:
                client.publish(t.command("cam1", "threshold"), payload, qos=1).wait_for_publish(5)
                try:
                    parse_threshold(payload)
                    valid += 1
                except CommandError:
                    pass
            # A valid last word shows that everything before it was handled.
            last = next(sentinel) % 256
            client.publish(t.command("cam1", "threshold"), str(last).encode(), qos=1)
            for _ in range(200):
                if core.camera("cam1").detect.threshold == last:
                    break
                time.sleep(0.02)
            assert core.camera("cam1").detect.threshold == last
            empty = sum(1 for p in batch if p == b"")  # clears, not commands
            assert service.commands_applied - applied == valid + 1
            assert service.commands_rejected - rejected == len(batch) - valid - empty

        try:
            check()
        finally:
            client.loop_stop()
            client.disconnect()


# ---- WebSocket client messages against the real app ---------------------------------------

client_frames = st.one_of(
    st.builds(
        lambda s: {"type": "resume", "since": s},
        st.text(max_size=40) | st.from_regex(RESUME_SINCE_PATTERN, fullmatch=True),
    ),
    st.builds(
        lambda c: {"type": "subscribe", "cameras": c},
        st.none() | st.lists(st.text(max_size=12), max_size=5),
    ),
    st.dictionaries(st.sampled_from(["type", "since", "cameras", "token"]), st.text(max_size=8)),
    st.text(max_size=60),
)


@pytest.mark.slow
def test_websocket_messages_against_the_real_core(tmp_path: Path) -> None:
    cams = [{"id": "cam1", "url": "rtsp://127.0.0.1:9/cam1", "enabled": False}]
    with ThreadedServer(make_settings(tmp_path, cams)) as server:
        assert server.running is not None
        core = server.running.core
        events = [
            Event(id=core.ids.new(1_750_000_000 + i), camera="cam1", start=utc(1_750_000_000 + i),
                  end=utc(1_750_000_001 + i), peak_score=0.1)
            for i in range(5)
        ]  # fmt: skip

        async def store() -> None:
            for ev in events:
                core.storage.save_event(ev)
            await core.storage.flush()

        server.run(store())
        url = server.url.replace("http://", "ws://") + "/ws"
        offer: Any = ["motionhub", f"bearer.{VIEWER}"]
        with connect(url, subprotocols=offer) as ws:
            assert json.loads(ws.recv(timeout=5))["type"] == "hello"

            @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
            @given(client_frames)
            def check(frame: Any) -> None:
                text = frame if isinstance(frame, str) else json.dumps(frame)
                ws.send(text)
                ws.send(json.dumps({"type": "subscribe", "cameras": None}))  # a marker
                replies: list[dict[str, Any]] = []
                while True:
                    msg = json.loads(ws.recv(timeout=5))
                    if msg == {"type": "subscribed", "cameras": None} and (
                        not isinstance(frame, dict) or frame.get("type") != "subscribe" or replies
                    ):
                        break
                    if msg["type"] in ("stats", "camera_status", "motion"):
                        continue
                    replies.append(msg)
                kinds = {m["type"] for m in replies}
                assert kinds <= {"error", "subscribed", "resumed", "event_start", "event_end"}
                if "error" in kinds:
                    (err,) = [m for m in replies if m["type"] == "error"]
                    assert 0 < len(err["message"]) <= 300
                if (
                    isinstance(frame, dict)
                    and frame.get("type") == "resume"
                    and set(frame) == {"type", "since"}
                ):
                    if re.fullmatch(RESUME_SINCE_PATTERN, frame["since"]):
                        replayed = [m["event"]["id"] for m in replies if m["type"] == "event_end"]
                        assert replayed == [e.id for e in events if e.id > frame["since"]]
                    else:
                        assert kinds == {"error"}, "a since that is no event id is refused"

            check()
            # Still the same, live session.
            ws.send(json.dumps({"type": "subscribe", "cameras": ["cam1"]}))
            while (msg := json.loads(ws.recv(timeout=5)))["type"] != "subscribed":
                pass
            assert msg["cameras"] == ["cam1"]
