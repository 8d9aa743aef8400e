"""Delivery latency to an MQTT subscriber under the camera load of the latency benchmark:
8 cameras at 15 fps publishing motion analyses on the hub, events starting and ending.

Measured from the pipeline's hub publish to a real subscriber receiving the message: the
part of "frame decoded to delivery" that MQTT adds (the whole chain is measured by
``motionhub bench latency``).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path

from broker_harness import Recorder
from mqtt_harness import FakeServices, camera, data_dir, make_event, mqtt_settings, running

from server.messages import Event, EventEndMessage, EventStartMessage, MotionMessage
from server.mqtt import MqttEventMessage, MqttService
from server.mqtt.topics import Topics

CAMERAS = 8
FPS = 15
SECONDS = 4.0


async def test_event_and_motion_latency_to_a_subscriber(
    mosquitto, mqtt_prefix: str, tmp_path: Path
) -> None:
    cams = [f"cam{i}" for i in range(CAMERAS)]
    services = FakeServices([camera(c) for c in cams])
    service = MqttService(services, mqtt_settings(mosquitto.url, mqtt_prefix), data_dir(tmp_path))
    t = Topics(mqtt_prefix)
    sent: dict[str, float] = {}  # message key -> hub publish time
    async with (
        running(service),
        Recorder(mosquitto.url, t.events, f"{mqtt_prefix}/+/motion") as rec,
    ):
        assert await service.wait_idle()
        await rec.quiet(0.2)
        rec.messages.clear()
        loop = asyncio.get_running_loop()
        start = loop.time()
        tick = 0
        open_events: dict[str, Event] = {}
        while loop.time() - start < SECONDS:
            for cam in cams:
                services.hub.publish(
                    MotionMessage(camera=cam, ts=time.time(), motion=True, score=0.1)
                )
            # Every tick one camera's event starts or ends: 15 event messages a second, far
            # more than real scenes make, each also switching a retained motion state.
            cam = cams[tick % CAMERAS]
            ev = open_events.pop(cam, None)
            msg: EventStartMessage | EventEndMessage
            if ev is None:
                ev = open_events[cam] = make_event(cam)
                msg = EventStartMessage(event=ev, ts=time.time())
            else:
                msg = EventEndMessage(event=ev)
            sent[f"{msg.type.removeprefix('event_')}:{ev.id}"] = time.time()
            services.hub.publish(msg)
            tick += 1
            await asyncio.sleep(max(0.0, start + tick / FPS - loop.time()))
        await service.outbox.wait_empty(5.0)
        assert await service.wait_idle()
        await rec.quiet(0.2)

    event_lat = []
    for m in rec.on(t.events):
        msg = MqttEventMessage.model_validate_json(m.payload)
        event_lat.append((m.at - sent[f"{msg.type}:{msg.event.id}"]) * 1e3)
    assert len(event_lat) >= SECONDS * FPS - 2
    p50 = statistics.median(event_lat)
    cuts = statistics.quantiles(event_lat, n=100)
    summary = f"event delivery p50 {p50:.1f} ms, p95 {cuts[94]:.1f} ms, p99 {cuts[98]:.1f} ms"
    # The benchmark's budget is 25 ms at p99 from frame decoded to an MQTT subscriber; the
    # MQTT hop alone stays well inside it. p95 is asserted rather than p99 because on a
    # shared 2-core machine one scheduling stall in 60 samples decides a p99; the benchmark
    # measures p99 over many more.
    assert p50 <= 10.0, summary
    assert cuts[94] <= 25.0, summary
    # Motion states are coalesced, never queued: every ON/OFF arrives, none late.
    motion = [m for m in rec.messages if m.topic.endswith("/motion")]
    assert len(motion) == len(event_lat)
