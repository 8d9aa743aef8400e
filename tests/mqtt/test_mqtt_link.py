"""The connection supervisor: backoff, reconnect, resubscribe, state reporting."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path

import aiomqtt
import paho.mqtt.client as paho
import pytest
from broker_harness import Mosquitto, Recorder, publish, retained
from mqtt_harness import FakeServices, camera, data_dir, make_event, mqtt_settings, running
from paho.mqtt.enums import CallbackAPIVersion
from rel_harness import eventually

from server.messages import EventStartMessage
from server.mqtt import MqttService
from server.mqtt.link import LinkState, raise_if_cancelling
from server.mqtt.topics import Topics


async def test_reconnects_resubscribes_and_republishes_after_a_broker_restart(
    private_mosquitto: Mosquitto, mqtt_prefix: str, tmp_path: Path
) -> None:
    broker = private_mosquitto
    services = FakeServices([camera("cam1", ["z"])])
    changes: asyncio.Queue[bool] = asyncio.Queue()
    service = MqttService(
        services,
        mqtt_settings(broker.url, mqtt_prefix),
        data_dir(tmp_path),
        on_connected=changes.put_nowait,
    )
    t = Topics(mqtt_prefix)
    async with running(service):
        assert await changes.get() is True
        assert await service.wait_idle()
        broker.stop()  # SIGKILL: the broker forgets every retained message
        async with asyncio.timeout(5):
            assert await changes.get() is False
        assert not service.connected.is_set()
        assert service.state in (LinkState.WAITING, LinkState.CONNECTING)
        await asyncio.sleep(1.0)  # a few refused attempts
        assert service.link.failures >= 2
        broker.start()
        async with asyncio.timeout(10):
            assert await changes.get() is True
        assert service.state is LinkState.CONNECTED
        assert await service.wait_idle()
        fresh = await retained(broker.url, f"{mqtt_prefix}/#")
        assert fresh[t.available].payload == b"online"
        assert fresh[t.motion("cam1")].payload == b"OFF"
        assert fresh[t.zone_motion("cam1", "z")].payload == b"OFF"
        assert t.state("cam1", "detect") in fresh
        # Subscribed again: a command after the restart is applied.
        async with Recorder(broker.url, t.state("cam1", "detect")) as rec:
            async with aiomqtt.Client("127.0.0.1", broker.port) as client:
                await client.publish(t.command("cam1", "detect"), b"OFF", qos=1)
            await rec.wait_value(t.state("cam1", "detect"), b"OFF")
    assert service.link.reconnects == 1
    assert service.state is LinkState.STOPPED


async def test_starts_without_a_broker_and_connects_when_it_appears(
    private_mosquitto: Mosquitto, mqtt_prefix: str, tmp_path: Path
) -> None:
    broker = private_mosquitto
    broker.stop()
    service = MqttService(
        FakeServices([camera("cam1")]), mqtt_settings(broker.url, mqtt_prefix), data_dir(tmp_path)
    )
    await service.start()
    task = asyncio.create_task(service.run())
    await asyncio.sleep(0.5)
    assert service.state in (LinkState.WAITING, LinkState.CONNECTING)
    assert service.link.last_error is not None
    broker.start()
    async with asyncio.timeout(10):
        await service.connected.wait()
    await service.stop(2.0)
    await task
    assert service.state is LinkState.STOPPED
    after = await retained(broker.url, Topics(mqtt_prefix).available)
    assert after[Topics(mqtt_prefix).available].payload == b"offline"


async def test_serve_stops_cleanly_when_cancelled(
    mosquitto: Mosquitto, mqtt_prefix: str, tmp_path: Path
) -> None:
    # This is how the server's lifespan stops every front end.
    service = MqttService(
        FakeServices([camera("cam1")]),
        mqtt_settings(mosquitto.url, mqtt_prefix),
        data_dir(tmp_path),
    )
    task = asyncio.create_task(service.serve())
    async with asyncio.timeout(10):
        await service.connected.wait()
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=6)
    assert task in done
    assert task.cancelled()
    after = await retained(mosquitto.url, Topics(mqtt_prefix).available)
    assert after[Topics(mqtt_prefix).available].payload == b"offline"


async def test_an_event_leaves_for_the_broker_before_the_loop_turns_again(
    mosquitto: Mosquitto, mqtt_prefix: str, tmp_path: Path
) -> None:
    """aiomqtt alone registers a socket writer for a queued packet and sends it two loop
    turns later; the link sends it from the publish itself. The event loop is blocked right
    after the sender's first step, so only a packet already written can reach a subscriber
    that runs on its own thread."""
    t = Topics(mqtt_prefix)
    subscribed, received = threading.Event(), threading.Event()
    sub = paho.Client(CallbackAPIVersion.VERSION2)
    sub.on_subscribe = lambda *_: subscribed.set()
    sub.on_message = lambda *_: received.set()
    host, port = mosquitto.url.removeprefix("mqtt://").rsplit(":", 1)
    sub.connect(host, int(port))
    sub.subscribe(t.events, qos=1)
    sub.loop_start()
    try:
        assert subscribed.wait(5)
        services = FakeServices([camera("cam1")])
        service = MqttService(
            services, mqtt_settings(mosquitto.url, mqtt_prefix), data_dir(tmp_path)
        )
        async with running(service):
            assert await service.wait_idle()
            # A first event delivered: the sender is running (steady state).
            services.hub.publish(EventStartMessage(event=make_event("cam1"), ts=time.time()))
            assert await service.outbox.wait_empty(5.0)
            assert received.wait(5.0)
            received.clear()
            services.hub.publish(EventStartMessage(event=make_event("cam1"), ts=time.time()))
            await asyncio.sleep(0)  # the sender's task takes its first step, then this one
            assert received.wait(2.0), "the event stayed queued until the loop turned"
            await service.outbox.wait_empty(5.0)
    finally:
        sub.loop_stop()
        sub.disconnect()


async def test_a_refused_login_is_named_as_such(
    start_mosquitto: Callable[..., Mosquitto],
    mqtt_prefix: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = start_mosquitto(users={"svc": "the-right-password"})
    settings = mqtt_settings(broker.url, mqtt_prefix, username="svc", password="a-wrong-one")
    service = MqttService(FakeServices([camera("cam1")]), settings, data_dir(tmp_path))
    with caplog.at_level("WARNING", logger="server.mqtt.link"):
        serving = asyncio.create_task(service.serve())

        async def refused_twice() -> bool:
            return service.link.failures >= 2

        try:
            await eventually(refused_twice, 10, "two refused logins")
        finally:
            serving.cancel()
            await asyncio.wait([serving], timeout=10)
        assert serving.cancelled()
    refused = [r.getMessage() for r in caplog.records if "refused the login" in r.getMessage()]
    assert refused, caplog.text
    assert "check mqtt.username and mqtt.password" in refused[0]
    assert "unreachable" not in caplog.text
    assert "a-wrong-one" not in caplog.text


async def test_states_a_crash_left_are_put_right_before_online(
    mosquitto: Mosquitto, mqtt_prefix: str, tmp_path: Path
) -> None:
    t = Topics(mqtt_prefix)
    # What a server killed during an event leaves retained (its last will set "offline").
    crashed = {
        t.available: b"offline",
        t.status("cam1"): b"online",
        t.motion("cam1"): b"ON",
        t.zone_motion("cam1", "z"): b"ON",
    }
    for topic, payload in crashed.items():
        await publish(mosquitto.url, topic, payload, retain=True)
    services = FakeServices([camera("cam1", ["z"])])
    service = MqttService(services, mqtt_settings(mosquitto.url, mqtt_prefix), data_dir(tmp_path))
    async with Recorder(mosquitto.url, f"{mqtt_prefix}/#") as rec:
        await rec.wait_for(lambda ms: len(ms) >= len(crashed), what="the retained states")
        async with running(service):
            await rec.wait_value(t.available, b"online")
        live = [m for m in rec.messages if not m.retain]
    order = [(m.topic, m.payload) for m in live]
    online = order.index((t.available, b"online"))
    # Home Assistant takes whatever it holds as current once "online" arrives: the motion
    # must be OFF by then, or automations see motion that ended with the crash.
    assert order.index((t.motion("cam1"), b"OFF")) < online
    assert order.index((t.zone_motion("cam1", "z"), b"OFF")) < online


async def test_a_clean_stop_leaves_every_camera_offline(
    mosquitto: Mosquitto, mqtt_prefix: str, tmp_path: Path
) -> None:
    t = Topics(mqtt_prefix)
    services = FakeServices([camera("cam1"), camera("cam2")])
    service = MqttService(services, mqtt_settings(mosquitto.url, mqtt_prefix), data_dir(tmp_path))
    async with running(service):
        assert await service.wait_idle()
        before = await retained(mosquitto.url, f"{mqtt_prefix}/#")
    after = await retained(mosquitto.url, f"{mqtt_prefix}/#")
    assert before[t.status("cam1")].payload == b"online"
    assert after[t.available].payload == b"offline"
    assert after[t.status("cam1")].payload == b"offline"
    assert after[t.status("cam2")].payload == b"offline"
    # Started again in the same process (as serve() does), the cameras are what the core
    # says once more.
    service.link.rearm()
    async with running(service):
        assert await service.wait_idle()
        again = await retained(mosquitto.url, f"{mqtt_prefix}/#")
    assert again[t.status("cam1")].payload == b"online"
    assert again[t.available].payload == b"online"


async def test_a_stop_that_meets_the_brokers_acknowledgement_is_not_lost() -> None:
    """aiomqtt's publish waits for the PUBACK with asyncio.wait_for. When the PUBACK and a
    cancellation land in the same loop turn, Python 3.11's wait_for returns normally and
    the cancellation is dropped; raise_if_cancelling() after the call raises it again."""
    ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    steps: list[str] = []

    async def publishing() -> None:
        await asyncio.wait_for(ack, 5)  # as aiomqtt's publish waits for its PUBACK
        steps.append("acknowledged")
        raise_if_cancelling()
        steps.append("went on")  # what a lost stop looks like
        await asyncio.sleep(30)

    task = asyncio.create_task(publishing())
    await asyncio.sleep(0)  # the task now waits for the acknowledgement
    ack.set_result(None)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    assert "went on" not in steps
