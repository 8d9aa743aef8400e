"""The MQTT broker killed and restarted during a burst of 500 events, under the whole server.

Events are published on the server's hub, exactly where the camera pipelines publish them,
so the real MQTT front end, its outbox and the WebSocket fan-out all carry them. Checked,
by id: every event's start and end reaches MQTT exactly once after a consumer drops
redeliveries (which carry the same message id), in order per camera; the WebSocket client,
which never depended on the broker, gets every message exactly once and in order; readiness
and metrics report the outage while it lasts.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from broker_harness import Mosquitto, Received, Recorder, first_occurrences
from rel_harness import VIEWER, make_settings, metric, serve
from websockets.asyncio.client import connect

from server.messages import Event, EventEndMessage, EventStartMessage

EVENTS = 500
CAMERAS = [f"cam{i}" for i in range(4)]
SERVICE = {"svc": "svc-Br0ker-pass-never-shown"}
OBSERVER = {"obs": "observer-pass-1234"}
REDELIVERY_WINDOW = 64
"""Messages that may be in flight (sent, not yet acknowledged) when the broker dies."""


def delivered(count: int) -> Callable[[list[Received]], bool]:
    """Whether the messages hold ``count`` distinct event messages."""
    return lambda messages: len(first_occurrences(messages)[0]) >= count


@pytest.mark.slow
async def test_broker_killed_and_restarted_during_500_events(
    tmp_path: Path, mqtt_prefix: str, start_mosquitto: Callable[..., Mosquitto]
) -> None:
    # With user accounts, so the server can be kept out while the observer re-subscribes
    # after the restart.
    broker = start_mosquitto(users={**SERVICE, **OBSERVER})
    ((user, password),) = SERVICE.items()
    ((obs_user, obs_password),) = OBSERVER.items()
    mqtt = {
        "url": broker.url,
        "topic_prefix": mqtt_prefix,
        "username": user,
        "password": password,
        "reconnect_min": 0.05,
        "reconnect_max": 0.5,
        "keepalive": 5,
        "discovery": {"enabled": False},
    }
    # Cameras that exist (the MQTT side tracks their state) but never open a stream.
    cams = [{"id": c, "url": f"rtsp://127.0.0.1:9/{c}", "enabled": False} for c in CAMERAS]
    settings = make_settings(tmp_path / "data", cams, mqtt=mqtt)
    events_topic = f"{mqtt_prefix}/events"
    produced: dict[str, list[tuple[str, str]]] = {c: [] for c in CAMERAS}
    ws_got: list[tuple[str, str]] = []
    down = asyncio.Event()
    async with serve(settings) as srv:
        service = srv.app.state.mqtt
        async with asyncio.timeout(10):
            await service.connected.wait()
        first = Recorder(broker.url, events_topic, username=obs_user, password=obs_password)
        await first.__aenter__()
        ws = await connect(
            f"ws://127.0.0.1:{srv.port}/ws",
            subprotocols=["motionhub", f"bearer.{VIEWER}"],  # type: ignore[list-item]
        )
        ws_reader = asyncio.create_task(_read_ws(ws, ws_got, 2 * EVENTS))

        async def produce() -> None:
            hub = srv.app.state.hub
            for i in range(EVENTS):
                cam = CAMERAS[i % len(CAMERAS)]
                now = time.time()
                ev = Event(
                    id=srv.core.ids.new(now),
                    camera=cam,
                    start=datetime.fromtimestamp(now, UTC),
                    peak_score=0.1,
                )
                hub.publish(EventStartMessage(event=ev, ts=now))
                hub.publish(EventEndMessage(event=ev.model_copy(update={"end": ev.start})))
                produced[cam] += [(ev.id, "start"), (ev.id, "end")]
                if i == EVENTS // 3:
                    # Kill it once it has passed on what it acknowledged: a broker that
                    # dies between acknowledging and forwarding loses that message
                    # itself, which no publisher can prevent.
                    await first.wait_for(delivered(2 * (i + 1)), 10, "the first third over MQTT")
                    broker.stop()  # SIGKILL
                    down.set()
                await asyncio.sleep(0.004)

        producer = asyncio.create_task(produce())
        await down.wait()
        await first.__aexit__()
        outage_started = time.monotonic()
        r = await srv.client.get("/readyz")
        while r.status_code == 200:
            assert time.monotonic() - outage_started < 5, "readyz never noticed the outage"
            await asyncio.sleep(0.05)
            r = await srv.client.get("/readyz")
        assert r.status_code == 503
        assert r.json()["mqtt"] is False
        assert metric(await srv.metrics(), "motionhub_mqtt_connected") == 0
        # Back, but for the observer only, so it is subscribed before the server
        # reconnects: with no subscriber the broker would drop the events.
        broker.allow(OBSERVER)
        broker.start()
        async with Recorder(
            broker.url, events_topic, username=obs_user, password=obs_password
        ) as second:
            await asyncio.sleep(0.3)
            assert not service.connected.is_set()
            broker.allow({**SERVICE, **OBSERVER})
            await producer
            total = 2 * EVENTS
            await second.wait_for(
                lambda ms: len(first_occurrences(first.messages + ms)[0]) >= total,
                30,
                "every event over MQTT",
            )
            await second.quiet(0.3)
        await asyncio.wait_for(ws_reader, 10)
        await ws.close()
        assert (await srv.client.get("/readyz")).status_code == 200
        text = await srv.metrics()

    raw = first.messages + second.messages
    received, _ = first_occurrences(raw)
    redelivered = len(raw) - len(received)
    print(
        f"\nbroker restart: {len(received)} of {total} event messages delivered over MQTT "
        f"({len(first.messages)} before the kill, {len(second.messages)} after the restart, "
        f"{redelivered} redeliveries dropped by message id); WebSocket got {len(ws_got)}"
    )
    assert len(received) == total
    assert len({(m.event.id, m.type) for m in received}) == total  # nothing twice by event id
    for cam in CAMERAS:
        got = [(m.event.id, m.type) for m in received if m.event.camera == cam]
        assert got == produced[cam], f"{cam}: missing or out of order"
    assert redelivered <= REDELIVERY_WINDOW
    # Redeliveries are the same message, not a second copy of the event with a new id.
    by_id: dict[str, bytes] = {}
    for m in raw:
        msg_id = json.loads(m.payload)["id"]
        assert by_id.setdefault(msg_id, m.payload) == m.payload
    # The WebSocket never depended on the broker: everything, once, in order.
    everything = [x for cam in CAMERAS for x in produced[cam]]
    assert len(ws_got) == total
    assert sorted(ws_got) == sorted(everything)
    for cam in CAMERAS:
        ids = {e for e, _ in produced[cam]}
        assert [x for x in ws_got if x[0] in ids] == produced[cam]
    assert metric(text, "motionhub_mqtt_connected") == 1
    assert metric(text, "motionhub_mqtt_reconnects_total") == 1


async def _read_ws(ws: Any, into: list[tuple[str, str]], count: int) -> None:
    async for raw in ws:
        msg = json.loads(raw)
        if msg["type"] in ("event_start", "event_end"):
            into.append((msg["event"]["id"], msg["type"].removeprefix("event_")))
            if len(into) >= count:
                return
