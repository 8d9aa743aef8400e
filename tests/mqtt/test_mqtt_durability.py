"""Durable delivery: the broker killed mid-burst, and a restart with messages pending.

A consumer de-duplicates on the message id; what is checked is that after that nothing is
missing and every camera's messages come in the order they were produced. A message the
broker received just before it died may arrive twice (its acknowledgement died with the
broker); the count of those is bounded by the publish window.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from broker_harness import Mosquitto, Received, Recorder, first_occurrences
from mqtt_harness import FakeServices, camera, data_dir, make_event, mqtt_settings, running
from prometheus_client import CollectorRegistry, generate_latest

from server.messages import EventEndMessage, EventStartMessage
from server.mqtt import MqttCollector, MqttEventMessage, MqttService
from server.mqtt.topics import Topics

SERVICE_PASSWORD = "svc-Pa55-never-printed-7f3k"
OBSERVER = {"obs": "observer-pass-1234"}
WINDOW = 32


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) > 1 else values[0]


async def test_broker_killed_during_a_burst_of_500_events(
    tmp_path: Path,
    mqtt_prefix: str,
    caplog: pytest.LogCaptureFixture,
    start_mosquitto: Callable[..., Mosquitto],
) -> None:
    caplog.set_level(logging.DEBUG)
    users = {"svc": SERVICE_PASSWORD, **OBSERVER}
    broker = start_mosquitto(users=users)
    cams = [f"cam{i}" for i in range(8)]
    services = FakeServices([camera(c) for c in cams])
    settings = mqtt_settings(broker.url, mqtt_prefix, username="svc", password=SERVICE_PASSWORD)
    service = MqttService(services, settings, data_dir(tmp_path))
    t = Topics(mqtt_prefix)
    produced: dict[str, list[tuple[str, str]]] = {c: [] for c in cams}
    publish_ms: dict[str, list[float]] = {"up": [], "down": []}
    broker_down = asyncio.Event()
    first = Recorder(broker.url, t.events, **_login(OBSERVER))

    async def produce(events: int) -> None:
        for i in range(events):
            cam = cams[i % len(cams)]
            ev = make_event(cam)
            for msg in (
                EventStartMessage(event=ev),
                EventEndMessage(event=ev.model_copy(update={"end": ev.start})),
            ):
                t0 = time.perf_counter()
                services.hub.publish(msg)
                publish_ms["down" if broker_down.is_set() else "up"].append(
                    (time.perf_counter() - t0) * 1e3
                )
                produced[cam].append((ev.id, msg.type.removeprefix("event_")))
            if i == events // 3:
                # Kill the broker once it has passed on what it acknowledged: a broker that
                # dies between acknowledging and forwarding loses that message itself, which
                # no publisher can prevent. Messages still in flight to it are not affected.
                count = sum(len(v) for v in produced.values())
                await first.wait_for(lambda ms, n=count: _unique(ms) >= n, 10)
                broker.stop()  # SIGKILL
                broker_down.set()
            await asyncio.sleep(0.004)

    async with running(service):
        await first.__aenter__()
        producer = asyncio.create_task(produce(500))
        await broker_down.wait()
        await first.__aexit__()
        # Back, but only for the observer at first, so it is subscribed before the server
        # reconnects and nothing is delivered while no one listens.
        broker.allow(OBSERVER)
        broker.start()
        async with Recorder(broker.url, t.events, **_login(OBSERVER)) as second:
            await asyncio.sleep(0.5)
            assert not service.connected.is_set()
            broker.allow(users)
            await producer
            total = sum(len(v) for v in produced.values())
            try:
                await second.wait_for(lambda ms: _unique(first.messages + ms) >= total, 30)
            except TimeoutError:
                raise AssertionError(
                    f"got {_unique(first.messages)} + {_unique(second.messages)} of {total};"
                    f" outbox {len(service.outbox)}, published {service.events_published},"
                    f" state {service.state}"
                ) from None
            await second.quiet(0.3)
        assert await service.outbox.wait_empty(5.0)
        metrics = generate_latest(_registry(service)).decode()

    received, dupes = first_occurrences(first.messages + second.messages)
    assert len(received) == total == 1000
    for cam in cams:
        got = [(m.event.id, m.type) for m in received if m.event.camera == cam]
        assert got == produced[cam], f"{cam}: missing or out of order"
    assert dupes <= WINDOW
    assert service.link.reconnects == 1
    assert service.link.failures >= 2  # the kill, then at least one refused attempt
    # The pipeline never waited for the broker: publishing cost the same while it was away.
    assert p99(publish_ms["down"]) < max(5.0, 3 * p99(publish_ms["up"]))
    # The broker password appears nowhere: logs, broker log, MQTT traffic, metrics.
    everything = [caplog.text, broker.log.read_text(), metrics]
    everything += [m.payload.decode(errors="replace") for m in first.messages + second.messages]
    assert all(SERVICE_PASSWORD not in text for text in everything)
    assert "motionhub_mqtt_reconnects_total 1.0" in metrics


def _unique(messages: list[Received]) -> int:
    return len({MqttEventMessage.model_validate_json(m.payload).id for m in messages})


def _login(users: dict[str, str]) -> dict[str, str]:
    ((user, password),) = users.items()
    return {"username": user, "password": password}


def _registry(service: MqttService) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(MqttCollector(service))
    return registry


async def test_pending_messages_are_delivered_after_a_restart(
    private_mosquitto: Mosquitto, mqtt_prefix: str, tmp_path: Path
) -> None:
    broker = private_mosquitto
    broker.stop()
    services = FakeServices([camera("cam1"), camera("cam2")])
    settings = mqtt_settings(broker.url, mqtt_prefix)
    t = Topics(mqtt_prefix)
    first = MqttService(services, settings, data_dir(tmp_path))
    await first.start()
    run = asyncio.create_task(first.run())
    produced = []
    for i in range(20):
        ev = make_event(f"cam{i % 2 + 1}")
        services.hub.publish(EventStartMessage(event=ev))
        services.hub.publish(EventEndMessage(event=ev.model_copy(update={"end": ev.start})))
        produced += [(ev.id, "start"), (ev.id, "end")]
    assert len(first.outbox) == 40
    await first.stop(2.0)
    await run
    rows = (
        sqlite3.connect(data_dir(tmp_path) / "outbox.db")
        .execute("SELECT msg_id FROM outbox ORDER BY seq")
        .fetchall()
    )
    assert len(rows) == 40

    broker.start()
    async with Recorder(broker.url, t.events) as rec:
        second = MqttService(
            FakeServices([camera("cam1"), camera("cam2")]), settings, data_dir(tmp_path)
        )
        async with running(second):
            await rec.wait_for(lambda ms: len(ms) >= 40)
            assert await second.outbox.wait_empty(5.0)
            await rec.quiet(0.2)
    got, dupes = first_occurrences(rec.messages)
    assert dupes == 0
    assert [m.id for m in got] == [r[0] for r in rows]
    assert [(m.event.id, m.type) for m in got] == produced
