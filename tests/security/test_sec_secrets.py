"""Secrets never leak: a full scenario, then a search of everything the server said.

``motionhub serve`` (debug logging) runs cameras whose URLs carry a password (a working RTSP
camera with motion, one with a wrong path, an unreachable HTTP one with the password in the
query string too) and an MQTT link with a password. The first two cameras' password and the
MQTT password come into the config file from the environment (``${NAME}``), the third
camera's is written in the file. API calls create, change and break
cameras; a WebSocket client and an MQTT subscriber on ``#`` listen throughout. Then the log,
every API response, ``/metrics``, every MQTT message and every WebSocket message are
searched for the camera password (also URL-encoded) and the MQTT password.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from broker_harness import Mosquitto, Recorder
from sec_harness import ADMIN, free_port, listening_url, motionhub, poll, stop, write_config
from websockets.asyncio.client import connect

from clients.sim import RtspCamera, SceneSpec, render_clip

CAM_USER = "viewer"
CAM_PASSWORD = "Cam-Pa55word-0f-the-yard!"
MQTT_PASSWORD = "Mqtt-Pa55word-never-shown"
OBSERVER = {"obs": "observer-pass-9876"}
SPEC = SceneSpec(width=320, height=240, fps=10, seed=4, objects=3, active_seconds=2,
                 still_seconds=1, loop_seconds=6)  # fmt: skip


def leaks(text: str) -> list[str]:
    """Which secrets (in any common spelling) appear in ``text``."""
    found = []
    for secret in (CAM_PASSWORD, MQTT_PASSWORD):
        for form in {secret, quote(secret, safe=""), quote(secret)}:
            if form in text:
                found.append(form)
    return found


@pytest.mark.slow
async def test_no_secret_in_logs_api_metrics_mqtt_or_websocket(
    tmp_path: Path, mqtt_prefix: str, start_mosquitto: Callable[..., Mosquitto]
) -> None:
    broker = start_mosquitto(users={"svc": MQTT_PASSWORD, **OBSERVER})
    clip = render_clip(SPEC)
    auth = {"Authorization": f"Bearer {ADMIN}"}
    secret = quote(CAM_PASSWORD, safe="")
    responses: list[str] = []
    ws_text: list[str] = []
    with RtspCamera(clip, path="yard", user=CAM_USER, password=CAM_PASSWORD) as cam:
        good = cam.url_with_credentials
        assert f":{secret}@" in good
        env = {"YARD_PASSWORD": secret, "BROKER_PASSWORD": MQTT_PASSWORD}
        from_env = good.replace(f":{secret}@", ":${YARD_PASSWORD}@")
        wrong_path = from_env.replace("/yard", "/nosuch")
        # A port left closed: the camera there is unreachable on purpose.
        unreachable = f"http://{CAM_USER}:{secret}@127.0.0.1:{free_port()}/video?pwd={secret}"
        config = write_config(
            tmp_path / "motionhub.yml",
            {
                "server": {
                    # Port 0: the server binds a free port itself and logs it, so no other
                    # program can take it between choosing it and listening on it.
                    "port": 0,
                    "auth": {"tokens": [{"token": ADMIN, "role": "admin"}]},
                },
                "storage": {"path": str(tmp_path / "data")},
                "logging": {"level": "DEBUG"},
                "mqtt": {
                    "url": broker.url,
                    "topic_prefix": mqtt_prefix,
                    "username": "svc",
                    "password": "${BROKER_PASSWORD}",
                    "reconnect_min": 0.05,
                    "reconnect_max": 0.5,
                },
                "cameras": [
                    {"id": "yard", "url": from_env,
                     "events": {"min_frames": 2, "off_delay": 0.5}},
                    {"id": "lost", "url": wrong_path, "open_timeout": 2},
                    {"id": "gone", "url": unreachable, "open_timeout": 2},
                ],
            },
        )  # fmt: skip
        ((obs, obs_password),) = OBSERVER.items()
        written = config.read_text()
        assert "${YARD_PASSWORD}" in written
        assert "${BROKER_PASSWORD}" in written
        assert MQTT_PASSWORD not in written
        proc = motionhub("serve", "--config", str(config), env=env)
        startup = ""
        try:
            url, startup = await asyncio.to_thread(listening_url, proc)
            base = url.rstrip("/")
            async with (
                Recorder(broker.url, "#", username=obs, password=obs_password) as mq,
                httpx.AsyncClient(base_url=base, headers=auth, timeout=10) as client,
            ):
                await asyncio.to_thread(
                    poll, f"{base}/readyz", lambda r: r.status_code == 200, 40, proc
                )
                ws = await connect(
                    base.replace("http://", "ws://", 1) + "/ws",
                    subprotocols=["motionhub", f"bearer.{ADMIN}"],  # type: ignore[list-item]
                )
                reader = asyncio.create_task(_collect(ws, ws_text))

                async def api(method: str, path: str, **kw: Any) -> httpx.Response:
                    r = await client.request(method, path, **kw)
                    responses.append(f"{method} {path} {r.status_code} {r.headers} {r.text}")
                    return r

                # An event from the camera with the password in its URL.
                for _ in range(150):
                    if (await api("GET", "/api/events")).json()["events"]:
                        break
                    await asyncio.sleep(0.2)
                else:
                    raise AssertionError("no event within 30 s")
                await api("POST", "/api/cameras", json={"id": "added", "url": unreachable})
                shown = (await api("GET", "/api/cameras/added")).json()["url"]
                assert "***" in shown
                # Round trip of the redacted URL keeps the stored password.
                await api("PATCH", "/api/cameras/added", json={"url": shown, "name": "Added"})
                # Invalid requests whose bodies carry the password.
                await api("POST", "/api/cameras", json={"id": "Bad Id", "url": good})
                await api("POST", "/api/cameras", json={"id": "bad2", "url": good, "kind": "x"})
                await api("POST", "/api/cameras", json={"id": "yard", "url": good})
                bad_url = f"ftp://{CAM_USER}:{secret}@127.0.0.1/x"
                await api("PATCH", "/api/cameras/added", json={"url": bad_url})
                await api("PATCH", "/api/cameras/added", json={"detect": {"fps": -1}})
                for path in ("/api/cameras", "/api/cameras/yard", "/api/cameras/lost",
                             "/api/cameras/gone", "/api/status", "/readyz", "/metrics",
                             "/openapi.json", "/api/events?limit=100"):  # fmt: skip
                    await api("GET", path)
                lost = (await api("GET", "/api/cameras/lost")).json()
                assert lost["status"] == "offline"
                assert lost["last_error"]
                await api("DELETE", "/api/cameras/added")
                await asyncio.sleep(1.0)
                reader.cancel()
                await ws.close()
                await mq.quiet(0.3)
                mqtt_text = [f"{m.topic} {m.payload.decode(errors='replace')}" for m in mq.messages]
        finally:
            _, rest = stop(proc)
            err = startup + rest

    assert proc.returncode in (0, -15), err[-3000:]
    assert any("event" in t for t in mqtt_text), "the scenario published no MQTT event"
    assert any('"event_start"' in t for t in ws_text), "the scenario sent no WebSocket event"
    assert "DEBUG" in err
    print(
        f"\nsecrets: searched {len(err)} log characters, {len(responses)} API responses, "
        f"{len(mqtt_text)} MQTT messages, {len(ws_text)} WebSocket messages"
    )
    assert leaks(err) == [], "a secret in the log"
    for r in responses:
        assert leaks(r) == [], f"a secret in an API response: {r[:300]}"
    for m in mqtt_text:
        assert leaks(m) == [], f"a secret in MQTT traffic: {m[:300]}"
    for w in ws_text:
        assert leaks(w) == [], f"a secret in WebSocket traffic: {w[:300]}"


async def _collect(ws: Any, into: list[str]) -> None:
    async for raw in ws:
        into.append(raw if isinstance(raw, str) else raw.decode(errors="replace"))
        json.loads(into[-1])
