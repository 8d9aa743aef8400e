"""The MQTT clients: ``motionhub listen`` and the example light, against a real broker."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from broker_harness import Recorder, publish
from mqtt_harness import JPEG, FakeServices, camera, data_dir, make_event, mqtt_settings, running

from clients.light import run_light
from clients.listen import MqttTarget, format_message, listen
from server.messages import (
    CameraStatusMessage,
    EventEndMessage,
    EventStartMessage,
    EventUpdateMessage,
)
from server.mqtt import MqttService
from server.mqtt.topics import Topics


async def test_listen_prints_state_and_events(mosquitto, mqtt_prefix: str, tmp_path: Path) -> None:
    services = FakeServices([camera("front", ["door"]), camera("back")])
    service = MqttService(services, mqtt_settings(mosquitto.url, mqtt_prefix), data_dir(tmp_path))
    lines: list[str] = []
    async with running(service):
        assert await service.wait_idle()
        task = asyncio.create_task(
            listen(MqttTarget(mosquitto.url), mqtt_prefix, camera="front", out=lines.append)
        )
        ev = make_event("front", ["door"], has_snapshot=True)
        services.snapshots[ev.id] = JPEG
        await asyncio.sleep(0.3)
        services.hub.publish(EventStartMessage(event=ev))
        # States are coalesced: without this pause ON and OFF would collapse into OFF.
        assert await service.wait_idle()
        services.hub.publish(EventEndMessage(event=ev.model_copy(update={"end": ev.start})))
        services.hub.publish(CameraStatusMessage(camera="back", status="offline"))
        await service.outbox.wait_empty(5.0)
        assert await service.wait_idle()
        await asyncio.sleep(0.3)
        task.cancel()
    text = "\n".join(lines)
    assert "server       online (retained)" in text
    assert "front        status online (retained)" in text
    assert "front        detect ON (retained)" in text
    assert f"event START  {ev.id}  zones=door" in text
    assert f"event END    {ev.id}" in text
    assert f"snapshot {len(JPEG)} bytes (JPEG)" in text
    assert "zones/door/motion ON" in text
    assert "back" not in text  # --camera front


def test_format_message_covers_every_topic() -> None:
    p = "mh"
    assert format_message(p, "other/x", b"1", False) is None
    assert "command detect = OFF" in (format_message(p, "mh/c/detect/set", b"OFF", False) or "")
    assert "threshold 12" in (format_message(p, "mh/c/threshold/state", b"12", True) or "")
    assert "fps 9.5 (retained)" in (format_message(p, "mh/c/fps", b"9.5", True) or "")
    assert "status cleared" in (format_message(p, "mh/c/status", b"", True) or "")
    assert "unreadable" in (format_message(p, "mh/events", b"{", False) or "")
    assert format_message(p, "mh/c/motion", b"ON", False, camera="d") is None


def test_listen_command_runs_and_exits_after_count(mosquitto, mqtt_prefix: str) -> None:
    subprocess.run(
        ["mosquitto_pub", "-p", str(mosquitto.port), "-t", f"{mqtt_prefix}/cam/motion",
         "-m", "ON", "-r"],
        check=True,
    )  # fmt: skip
    out = subprocess.run(
        [sys.executable, "-c", "from server.cli import main; main()", "listen",
         "--url", mosquitto.url, "--prefix", mqtt_prefix, "--count", "1"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert "cam          motion ON (retained)" in out.stdout
    subprocess.run(
        ["mosquitto_pub", "-p", str(mosquitto.port), "-t", f"{mqtt_prefix}/cam/motion",
         "-n", "-r"],
        check=True,
    )  # fmt: skip


def test_light_example_has_a_help_page() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "clients.light", "--help"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert "--off-delay" in out.stdout
    assert "--zone" in out.stdout
    assert "MOTIONHUB_MQTT_PASSWORD" in out.stdout  # the variable --password falls back to
    assert "Payload that switches the light on" in out.stdout


async def test_light_follows_zone_motion_with_an_off_delay(
    mosquitto, mqtt_prefix: str, tmp_path: Path
) -> None:
    services = FakeServices([camera("front", ["door", "path"])])
    service = MqttService(services, mqtt_settings(mosquitto.url, mqtt_prefix), data_dir(tmp_path))
    light_topic = f"{mqtt_prefix}-home/porch/light"
    t = Topics(mqtt_prefix)
    async with running(service), Recorder(mosquitto.url, light_topic) as light:
        assert await service.wait_idle()
        task = await _light_following(
            mosquitto.url, mqtt_prefix, "front", "door", light_topic, off_delay=0.6
        )
        hub = services.hub
        # Motion elsewhere does not switch it.
        ev = make_event("front", ["path"])
        hub.publish(EventStartMessage(event=ev))
        assert await service.wait_idle()
        await asyncio.sleep(0.3)
        assert light.messages == []
        # Entering the zone does, at once.
        hub.publish(EventUpdateMessage(event=ev.model_copy(update={"zones": ["path", "door"]})))
        await light.wait_value(light_topic, b"ON", within=5)
        # The event ends, a new one starts within the delay: the light stays on.
        hub.publish(EventEndMessage(event=ev.model_copy(update={"zones": ["path", "door"]})))
        await asyncio.sleep(0.2)
        ev2 = make_event("front", ["door"])
        hub.publish(EventStartMessage(event=ev2))
        await asyncio.sleep(0.8)
        assert [m.payload for m in light.messages] == [b"ON"]
        # Quiet for the delay: off.
        hub.publish(EventEndMessage(event=ev2))
        ended = asyncio.get_running_loop().time()
        await light.wait_value(light_topic, b"OFF", within=5)
        assert asyncio.get_running_loop().time() - ended >= 0.55
        assert [m.payload for m in light.messages] == [b"ON", b"OFF"]
        # motionhub going offline while the light is on switches it off after the delay too.
        hub.publish(EventStartMessage(event=make_event("front", ["door"])))
        await light.wait_value(light_topic, b"ON", within=5)
        await publish(mosquitto.url, t.available, b"offline")
        await light.wait_value(light_topic, b"OFF", within=5)
        # Stopping the client while the light is on switches it off: nobody else would.
        await publish(mosquitto.url, f"{mqtt_prefix}/front/zones/door/motion", b"ON")
        await light.wait_value(light_topic, b"ON", within=5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await light.wait_value(light_topic, b"OFF", within=5)
        assert [m.payload for m in light.messages][-2:] == [b"ON", b"OFF"]


async def test_light_switches_off_when_its_zone_is_deleted(mosquitto, mqtt_prefix: str) -> None:
    # Deleting a zone (or camera) while it has motion clears its retained topic with an
    # empty payload, and no OFF ever follows: the light must not stay on for good.
    light_topic = f"{mqtt_prefix}-home/yard/light"
    zone_topic = f"{mqtt_prefix}/yard/zones/gate/motion"
    async with Recorder(mosquitto.url, light_topic) as light:
        task = await _light_following(
            mosquitto.url, mqtt_prefix, "yard", "gate", light_topic, off_delay=0.2
        )
        try:
            await publish(mosquitto.url, zone_topic, b"ON", retain=True)
            await light.wait_value(light_topic, b"ON", within=5)
            await publish(mosquitto.url, zone_topic, b"", retain=True)
            await light.wait_value(light_topic, b"OFF", within=5)
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task


async def test_light_process_switches_off_when_terminated(mosquitto, mqtt_prefix: str) -> None:
    light_topic = f"{mqtt_prefix}-home/hall/light"
    async with Recorder(mosquitto.url, light_topic) as light:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "clients.light", "--url", mosquitto.url,
            "--prefix", mqtt_prefix, "--camera", "hall", "--light-topic", light_topic,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            assert proc.stderr is not None
            while b"following" not in await asyncio.wait_for(proc.stderr.readline(), 20):
                pass
            await publish(mosquitto.url, f"{mqtt_prefix}/hall/motion", b"ON")
            await light.wait_value(light_topic, b"ON", within=5)
            proc.terminate()
            assert await asyncio.wait_for(proc.wait(), 10) == 128 + signal.SIGTERM
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        await light.wait_value(light_topic, b"OFF", within=5)


_LISTEN = ["-c", "from server.cli import main; main()", "listen", "--count", "1"]
_LIGHT = ["-m", "clients.light", "--camera", "c", "--light-topic", "l"]
"""``motionhub listen`` and the example light, as ``python`` arguments before ``--url``."""


def _run_client(cmd: list[str], url: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *cmd, "--url", url],
        capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def test_listen_and_light_refuse_a_bad_url_in_one_line_without_its_password() -> None:
    bad = ["mqtt://127.0.0.1:abc", "mqtt://127.0.0.1:99999", "mqtt://127.0.0.1:0",
           "http://bob:s3cr3t@127.0.0.1", "mqtt://bob:s3cr3t@127.0.0.1:x"]  # fmt: skip
    for url in bad:
        for cmd in (_LISTEN, _LIGHT):
            out = _run_client(cmd, url, timeout=30)
            assert out.returncode == 2, (url, out.stderr)
            assert "Traceback" not in out.stderr
            assert "Error: Invalid value" in out.stderr.splitlines()[-1]
            assert "s3cr3t" not in out.stderr + out.stdout


def test_listen_and_light_exit_when_the_broker_refuses_the_credentials(start_mosquitto) -> None:
    broker = start_mosquitto(users={"alice": "right-password"})
    url = f"mqtt://alice:wrong-password@127.0.0.1:{broker.port}"
    for cmd in (_LISTEN, _LIGHT):
        out = _run_client(cmd, url, timeout=15)
        assert out.returncode == 1, out.stderr
        assert "refused user 'alice'" in out.stderr.splitlines()[-1]
        assert "wrong-password" not in out.stderr + out.stdout


def test_listen_and_light_refuse_wildcards_in_topic_options_in_one_line() -> None:
    for cmd in ([*_LISTEN, "--prefix", "a/#"], [*_LISTEN, "--camera", "x/+"],
                [*_LIGHT, "--zone", "z/#"], [*_LIGHT, "--light-topic", "l/#"]):  # fmt: skip
        out = _run_client(cmd, "mqtt://127.0.0.1:1", timeout=15)
        assert out.returncode == 2, (cmd, out.stderr)
        assert "Traceback" not in out.stderr
        assert "is not a topic name" in out.stderr.splitlines()[-1]


async def _light_following(
    url: str, prefix: str, camera: str, zone: str, light_topic: str, *, off_delay: float
) -> asyncio.Task[None]:
    """The light client as a task, once it follows ``camera``'s ``zone``."""
    ready = asyncio.Event()
    task = asyncio.create_task(
        run_light(
            MqttTarget(url),
            prefix=prefix,
            camera=camera,
            zone=zone,
            light_topic=light_topic,
            off_delay=off_delay,
            ready=ready.set,
        )
    )
    await ready.wait()
    return task
