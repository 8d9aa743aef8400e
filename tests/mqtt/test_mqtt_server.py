"""MQTT with the real server: the last will on SIGKILL, a crash with messages pending, and
a 10 s broker outage while simulated cameras make events."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from broker_harness import Mosquitto, Received, Recorder, first_occurrences, retained
from fastapi import FastAPI
from uvicorn_harness import uvicorn_on_free_port
from websockets.asyncio.client import connect

from server.app import create_app
from server.config import Settings
from server.messages import EventEndMessage, EventStartMessage, EventUpdateMessage, ServerMessage
from server.mqtt import MqttEventMessage, MqttService
from server.mqtt.topics import Topics

BASELINE = 20  # WebSocket motion samples before the outage, to compare latencies with
SERVE = [sys.executable, "-c", "from server.cli import main; main()", "serve", "--config"]


def write_config(path: Path, data: dict[str, Any]) -> Path:
    cfg = path / "motionhub.yml"
    cfg.write_text(yaml.safe_dump(data))
    return cfg


@contextlib.contextmanager
def server_process(cfg: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``motionhub serve`` as a child process; killed at the end whatever happened."""
    with log.open("ab") as out:
        proc = subprocess.Popen([*SERVE, str(cfg)], stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def base_config(tmp_path: Path, url: str, prefix: str, **mqtt: Any) -> dict[str, Any]:
    return {
        # Port 0: a server process binds a free port itself (its port is not needed here).
        "server": {"port": 0},
        "storage": {"path": str(tmp_path / "data")},
        "mqtt": {
            "url": url,
            "topic_prefix": prefix,
            "discovery": {"prefix": f"{prefix}-ha"},
            "reconnect_min": 0.1,
            "reconnect_max": 0.5,
            **mqtt,
        },
    }


async def test_last_will_fires_when_the_server_is_killed(
    mosquitto: Mosquitto, mqtt_prefix: str, tmp_path: Path
) -> None:
    cfg = write_config(tmp_path, base_config(tmp_path, mosquitto.url, mqtt_prefix))
    t = Topics(mqtt_prefix)
    async with Recorder(mosquitto.url, t.available) as rec:
        with server_process(cfg, tmp_path / "serve.log") as proc:
            await rec.wait_value(t.available, b"online", within=30)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            await rec.wait_value(t.available, b"offline", within=10)
    after = await retained(mosquitto.url, t.available)
    assert after[t.available].payload == b"offline"
    assert after[t.available].retain


def _outbox_rows(db: Path) -> list[str]:
    if not db.exists():
        return []
    with contextlib.closing(sqlite3.connect(db)) as conn:
        try:
            return [r[0] for r in conn.execute("SELECT msg_id FROM outbox ORDER BY seq")]
        except sqlite3.OperationalError:  # created but no table yet
            return []


@pytest.mark.slow
async def test_messages_pending_at_a_crash_are_delivered_after_restart(
    private_mosquitto: Mosquitto, mqtt_prefix: str, tmp_path: Path, sim_cameras: Any
) -> None:
    broker = private_mosquitto
    broker.stop()
    data = base_config(tmp_path, broker.url, mqtt_prefix)
    data["cameras"] = [
        {"id": "busy", "url": sim_cameras.mjpeg_url_for("busy"), "events": {"min_frames": 2}}
    ]
    cfg = write_config(tmp_path, data)
    db = tmp_path / "data" / "outbox.db"
    t = Topics(mqtt_prefix)
    with server_process(cfg, tmp_path / "serve.log") as proc:
        deadline = time.monotonic() + 60
        while len(_outbox_rows(db)) < 2:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, "no event message reached the outbox"
            await asyncio.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    pending = _outbox_rows(db)
    assert len(pending) >= 2

    broker.start()
    async with Recorder(broker.url, t.events) as rec:
        with server_process(cfg, tmp_path / "serve.log") as proc:

            def got(ms: list[Received]) -> set[str]:
                return {MqttEventMessage.model_validate_json(m.payload).id for m in ms}

            await rec.wait_for(lambda ms: set(pending) <= got(ms), within=60)
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    ids = [MqttEventMessage.model_validate_json(m.payload).id for m in rec.messages]
    first_seen = [i for n, i in enumerate(ids) if i in pending and i not in ids[:n]]
    assert first_seen == pending  # delivered first, in their original order
    assert ids[: len(pending)] == pending


# -- a 10 s broker outage with the real server, in this process -------------------------------


@contextlib.asynccontextmanager
async def serve_app(
    settings: Settings, record: Callable[[ServerMessage], None]
) -> AsyncIterator[tuple[FastAPI, int]]:
    """The real app under uvicorn on a loopback socket bound here (no other program can take
    its port first), recording the hub; yields the app and its port."""
    app = create_app(settings)
    app.state.hub.subscribe("test-recorder", record)
    async with uvicorn_on_free_port(app) as (port, _):
        yield app, port


async def test_the_hub_hands_an_event_to_mqtt_before_the_websocket_pass(
    mosquitto: Mosquitto, mqtt_prefix: str, tmp_path: Path
) -> None:
    """The hub calls its subscribers in order; MQTT's one small write must not wait behind
    the WebSocket pass over every client of the same burst."""
    settings = Settings(**base_config(tmp_path, mosquitto.url, mqtt_prefix))
    async with serve_app(settings, lambda _: None) as (app, _):
        names = app.state.hub.subscriber_names
    assert "websocket" in names
    assert "mqtt" in names
    assert names.index("mqtt") < names.index("websocket"), names


def _p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[8]


@pytest.mark.slow
async def test_broker_down_for_10_s_while_cameras_make_events(
    mqtt_prefix: str,
    tmp_path: Path,
    sim_cameras: Any,
    start_mosquitto: Callable[..., Mosquitto],
) -> None:
    obs = {"obs": "observer-pass-1234"}
    users = {"svc": "svc-password-5678", **obs}
    broker = start_mosquitto(users=users)
    data = base_config(tmp_path, broker.url, mqtt_prefix, username="svc", password=users["svc"])
    cams = ["c1", "c2", "c3"]
    data["cameras"] = [
        {
            "id": c,
            "url": sim_cameras.mjpeg_url_for("cycle"),
            "events": {"min_frames": 2, "off_delay": 1.0},
        }
        for c in cams
    ]
    settings = Settings(**data)
    t = Topics(mqtt_prefix)
    hub: list[ServerMessage] = []
    first_event = asyncio.Event()

    def record(message: ServerMessage) -> None:
        hub.append(message)
        if isinstance(message, EventStartMessage):
            first_event.set()

    latency: list[tuple[float, float]] = []  # (received, seconds since capture)
    baseline = asyncio.Event()  # enough latency samples with the broker up

    def produced() -> list[tuple[str, str, str]]:
        kinds = {"event_start": "start", "event_update": "update", "event_end": "end"}
        return [
            (m.event.camera, m.event.id, kinds[m.type])
            for m in list(hub)
            if isinstance(m, EventStartMessage | EventUpdateMessage | EventEndMessage)
        ]

    def delivered(messages: list[Received]) -> list[tuple[str, str, str]]:
        got, _ = first_occurrences(messages)
        return [(m.event.camera, m.event.id, m.type) for m in got]

    async def watch(url: str) -> None:
        async with connect(url) as ws:
            async for raw in ws:
                msg = json.loads(raw)
                if msg.get("type") == "motion":
                    now = time.time()
                    latency.append((now, now - msg["ts"]))
                    if len([at for at, _ in latency if at >= started + 1]) > BASELINE:
                        baseline.set()

    first = Recorder(broker.url, t.events, username="obs", password=obs["obs"])
    async with serve_app(settings, record) as (app, port):
        service: MqttService = app.state.mqtt
        await first.__aenter__()
        ws_task = asyncio.create_task(watch(f"ws://127.0.0.1:{port}/ws"))
        started = time.time()
        async with asyncio.timeout(30):
            await first_event.wait()
        # The baseline: WebSocket latency with the broker up, until there are enough
        # samples (a fixed wait gets too few when the machine is busy).
        async with asyncio.timeout(60):
            await baseline.wait()
        # Stop the broker at a moment when it has passed on everything (see the burst
        # test in test_mqtt_durability.py for why).
        await first.wait_for(lambda ms: len(delivered(ms)) >= len(produced()), 10)
        if len(delivered(first.messages)) < len(produced()):  # one more came meanwhile
            await first.wait_for(lambda ms: len(delivered(ms)) >= len(produced()), 10)
        broker.stop()
        down = time.time()
        at_down = len(produced())
        await first.__aexit__()
        await asyncio.sleep(10)
        assert len(service.outbox) > 0, "no event happened during the outage"
        assert not service.connected.is_set()
        restart = time.time()
        # In threads: the server runs in this event loop and must not be held up by the
        # test's own process handling.
        await asyncio.to_thread(broker.allow, obs)
        await asyncio.to_thread(broker.start)
        async with Recorder(broker.url, t.events, username="obs", password=obs["obs"]) as second:
            await asyncio.sleep(0.3)
            await asyncio.to_thread(broker.allow, users)
            cutoff = produced()
            await second.wait_for(lambda ms: len(delivered(first.messages + ms)) >= len(cutoff), 30)
            got = delivered(first.messages + second.messages)
        ws_task.cancel()

    for cam in cams:
        want = [m for m in cutoff if m[0] == cam]
        have = [m for m in got if m[0] == cam][: len(want)]
        assert have == want, f"{cam}: missing or out of order"
    assert len(cutoff) - at_down >= 3, "too few event messages during the outage"
    # Detection and the WebSocket feed carried on at the same pace while the broker was away.
    before = [lat for at, lat in latency if started + 1 <= at < down]
    during = [lat for at, lat in latency if down <= at < restart]
    assert len(before) > BASELINE
    assert len(during) > 50
    assert _p90(during) <= _p90(before) + 0.05, (_p90(before), _p90(during))


async def test_status_says_why_mqtt_is_down_until_it_is_up_again(
    mqtt_prefix: str, tmp_path: Path, start_mosquitto: Callable[..., Mosquitto]
) -> None:
    """``/api/status`` names the broker's refusal and the outage, never the password, and
    forgets the reason once the link is up."""
    password = "svc-secret-9876"
    broker = start_mosquitto(users={"svc": "another-password-1234"})
    data = base_config(tmp_path, broker.url, mqtt_prefix, username="svc", password=password)

    async def status_when(client: httpx.AsyncClient, check: Callable[[Any], bool]) -> Any:
        async with asyncio.timeout(30):
            while True:
                response = await client.get("/api/status")
                assert password not in response.text
                body = response.json()
                if check(body):
                    return body
                await asyncio.sleep(0.1)

    async with (
        serve_app(Settings(**data), lambda _: None) as (_, port),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client,
    ):
        refused = await status_when(client, lambda s: s["mqtt_error"] is not None)
        assert refused["mqtt"] is False
        assert "authori" in refused["mqtt_error"].lower(), refused

        broker.allow({"svc": password})
        up = await status_when(client, lambda s: s["mqtt"] is True)
        assert up["mqtt_error"] is None

        broker.stop()
        down = await status_when(client, lambda s: s["mqtt_error"] is not None)
        assert down["mqtt"] is False
        assert "authori" not in down["mqtt_error"].lower(), down

        broker.start()
        again = await status_when(client, lambda s: s["mqtt"] is True)
        assert again["mqtt_error"] is None
