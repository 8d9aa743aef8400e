"""Commands over MQTT: valid ones are applied and confirmed, invalid ones change nothing."""

from __future__ import annotations

import logging
from pathlib import Path

import aiomqtt
import pytest
from broker_harness import Recorder
from hypothesis import given
from hypothesis import strategies as st
from mqtt_harness import FakeServices, camera, data_dir, mqtt_settings, running

from server.mqtt import MqttService
from server.mqtt.commands import (
    MAX_PAYLOAD,
    CommandError,
    parse_command,
    parse_switch,
    parse_threshold,
)
from server.mqtt.topics import Topics

# -- the parser, property-tested -------------------------------------------------------------


@given(st.binary(max_size=64))
def test_switch_parser_accepts_only_on_and_off(payload: bytes) -> None:
    try:
        value = parse_switch(payload)
    except CommandError as exc:
        error = exc
    else:
        assert payload.decode("ascii").strip().upper() == ("ON" if value else "OFF")
        return
    assert error.reason
    assert payload.strip().upper() not in (b"ON", b"OFF") or len(payload) > MAX_PAYLOAD


@given(st.binary(max_size=64))
def test_threshold_parser_never_raises_anything_but_command_error(payload: bytes) -> None:
    try:
        value = parse_threshold(payload)
    except CommandError as exc:
        error = exc
    else:
        assert 0 <= value <= 255
        assert int(payload.decode("ascii").strip()) == value
        return
    assert error.reason


@given(st.text(max_size=40))
def test_any_text_is_handled(text: str) -> None:
    for kind in ("detect", "threshold"):
        try:
            cmd = parse_command("cam", kind, text.encode())  # type: ignore[arg-type]
        except CommandError:
            continue
        assert cmd.camera == "cam"
        assert cmd.kind == kind


@given(st.integers(min_value=0, max_value=255), st.sampled_from(["", " ", "\t", "\n", "+"]))
def test_valid_thresholds_round_trip(value: int, pad: str) -> None:
    lead = pad if pad != "+" else ""
    sign = "+" if pad == "+" else ""
    assert parse_threshold(f"{lead}{sign}{value}{lead}".encode()) == value


@given(st.integers().filter(lambda v: v < 0 or v > 255))
def test_out_of_range_thresholds_are_refused(value: int) -> None:
    with pytest.raises(CommandError):
        parse_threshold(str(value).encode())


@given(
    st.sampled_from(["on", "ON", "On", " off ", "OFF\n", "oFf"]),
)
def test_switch_is_case_and_space_insensitive(text: str) -> None:
    assert parse_switch(text.encode()) is (text.strip().upper() == "ON")


def test_long_payloads_are_refused_before_decoding() -> None:
    with pytest.raises(CommandError, match="longer"):
        parse_switch(b"ON" + b" " * MAX_PAYLOAD)


# -- against the broker ----------------------------------------------------------------------


async def _send(url: str, topic: str, payload: bytes, retain: bool = False) -> None:
    host, port = url.removeprefix("mqtt://").split(":")
    async with aiomqtt.Client(host, int(port)) as client:
        await client.publish(topic, payload, qos=1, retain=retain)


async def test_commands_are_applied_and_confirmed(
    mosquitto, mqtt_prefix: str, tmp_path: Path
) -> None:
    services = FakeServices([camera("cam1"), camera("cam2")])
    service = MqttService(services, mqtt_settings(mosquitto.url, mqtt_prefix), data_dir(tmp_path))
    t = Topics(mqtt_prefix)
    async with running(service), Recorder(mosquitto.url, f"{mqtt_prefix}/+/+/state") as live:
        await live.wait_value(t.state("cam1", "detect"), b"ON")
        await _send(mosquitto.url, t.command("cam1", "detect"), b"OFF")
        await live.wait_value(t.state("cam1", "detect"), b"OFF")
        await _send(mosquitto.url, t.command("cam2", "threshold"), b" 42 ")
        await live.wait_value(t.state("cam2", "threshold"), b"42")
        await _send(mosquitto.url, t.command("cam1", "detect"), b"on")
        await live.wait_value(t.state("cam1", "detect"), b"ON")
    assert services.calls == [
        ("detect", "cam1", False),
        ("threshold", "cam2", 42),
        ("detect", "cam1", True),
    ]
    assert services.settings.cameras[1].detect.threshold == 42
    assert service.commands_applied == 3
    assert service.commands_rejected == 0


BAD = [
    ("detect", b"maybe"),
    ("detect", b"\xff\xfe\x00"),
    ("detect", b"ON" * 100),
    ("threshold", b"300"),
    ("threshold", b"-1"),
    ("threshold", b"12.5"),
    ("threshold", b"0x10"),
    ("threshold", b"1e3"),
    ("threshold", "١٢".encode()),  # Arabic-Indic digits: int() would take them
]


async def test_invalid_commands_are_logged_and_ignored(
    mosquitto, mqtt_prefix: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    services = FakeServices([camera("cam1")])
    service = MqttService(services, mqtt_settings(mosquitto.url, mqtt_prefix), data_dir(tmp_path))
    t = Topics(mqtt_prefix)
    caplog.set_level(logging.WARNING, logger="server.mqtt")
    # A retained command is replayed to every new subscription: applying it would undo any
    # later change after each reconnect, so it is refused.
    await _send(mosquitto.url, t.command("cam1", "detect"), b"OFF", retain=True)
    async with running(service), Recorder(mosquitto.url, f"{mqtt_prefix}/+/+/state") as live:
        await live.wait_value(t.state("cam1", "threshold"), b"0")
        # Clearing it (an empty payload) is not a command either.
        await _send(mosquitto.url, t.command("cam1", "detect"), b"", retain=True)
        for kind, payload in BAD:
            await _send(mosquitto.url, t.command("cam1", kind), payload)  # type: ignore[arg-type]
        # An unknown camera and a near-miss topic: ignored too.
        await _send(mosquitto.url, t.command("nosuch", "detect"), b"OFF")
        await _send(mosquitto.url, f"{mqtt_prefix}/cam1/detect/set/x", b"OFF")
        # A valid command afterwards still works: nothing crashed or wedged.
        await _send(mosquitto.url, t.command("cam1", "threshold"), b"7")
        await live.wait_value(t.state("cam1", "threshold"), b"7")
    assert services.calls == [("threshold", "cam1", 7)]
    assert service.commands_rejected == len(BAD) + 2
    assert live.last(t.state("cam1", "detect")) == b"ON"
    assert any("ignored MQTT" in r.getMessage() for r in caplog.records)
