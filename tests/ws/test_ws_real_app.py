"""``/ws`` on the real app: a simulated camera's status, motion and events reach a client."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from ws_harness import (
    close_code,
    closed_by_server,
    make_event,
    recv_json,
    uvicorn_on_free_port,
    ws_uvicorn_options,
)

from server.app import create_app
from server.config import Settings, WebSocketSettings
from server.messages import EventStartMessage, MotionMessage

ADMIN = "admin-token-0123456789abcdef"
VIEWER = "viewer-token-0123456789abcdef"


def settings_for(tmp_path: Path, sim_cameras: Any) -> Settings:
    tokens = [{"token": ADMIN, "role": "admin"}, {"token": VIEWER, "role": "viewer"}]
    return Settings(
        server={"auth": {"tokens": tokens}},
        storage={"path": str(tmp_path)},
        cameras=[
            {
                "id": "cycle",
                "url": sim_cameras.mjpeg_url_for("cycle"),
                "events": {"off_delay": 1.0, "min_frames": 2},
            }
        ],
    )


@pytest.mark.slow
async def test_live_feed_from_the_real_pipeline(tmp_path: Path, sim_cameras: Any) -> None:
    app = create_app(settings_for(tmp_path, sim_cameras))
    async with uvicorn_on_free_port(app) as (port, _):
        url = f"ws://127.0.0.1:{port}/ws"
        async with connect(url, subprotocols=["motionhub", "bearer.wrong-0123456789abc"]) as ws:
            assert close_code(await closed_by_server(ws)) == 1008

        async with connect(url, subprotocols=["motionhub", f"bearer.{VIEWER}"]) as ws:
            hello = await recv_json(ws)
            assert hello["type"] == "hello"
            assert hello["role"] == "viewer"
            assert [c["id"] for c in hello["cameras"]] == ["cycle"]
            assert app.state.core.metrics.websocket_client_count == 1
            # The hello holds the status at connection time; later changes come as
            # camera_status (the camera may be online already when the client connects).
            status = hello["cameras"][0]["status"]
            seen: dict[str, dict[str, Any]] = {}
            while "event_end" not in seen or "stats" not in seen:
                msg = await recv_json(ws, 30)
                seen.setdefault(msg["type"], msg)
                if msg["type"] == "camera_status":
                    assert msg["camera"] == "cycle"
                    status = msg["status"]
            assert status == "online"
            moving = seen["motion"]
            assert moving["camera"] == "cycle"
            for box in moving["boxes"]:
                assert all(0 <= v <= 1 for v in box)
            event = seen["event_end"]["event"]
            assert event["camera"] == "cycle"
            assert seen["stats"]["clients"] >= 1

            # A client that was away asks for what it missed, from the beginning.
            await ws.send(json.dumps({"type": "resume", "since": ""}))
            replayed = []
            while True:
                msg = await recv_json(ws, 10)
                if msg["type"] == "resumed":
                    break
                if msg["type"].startswith("event_") and msg["event"]["id"] == event["id"]:
                    replayed.append(msg)
            assert replayed
            assert msg["count"] >= 1


@pytest.mark.parametrize("compression", [False, True])
async def test_messages_reach_real_clients_through_the_direct_send(
    tmp_path: Path, compression: bool
) -> None:
    # Without compression every client gets the same pre-built frame; with it, websockets
    # frames (and compresses) each client's copy. Both must arrive whole and in order.
    ws_settings = {"compression": compression}
    settings = Settings(
        server={"websocket": ws_settings}, storage={"path": str(tmp_path)}, cameras=[]
    )
    app = create_app(settings)
    options = ws_uvicorn_options(WebSocketSettings(**ws_settings))
    async with uvicorn_on_free_port(app, **options) as (port, _):
        url = f"ws://127.0.0.1:{port}/ws"
        async with (
            connect(url, compression="deflate" if compression else None) as a,
            connect(url, compression="deflate" if compression else None) as b,
        ):
            assert (await recv_json(a))["type"] == "hello"
            assert (await recv_json(b))["type"] == "hello"
            clients = list(app.state.ws_api.fanout.clients)
            assert len(clients) == 2
            assert all(c.direct_send for c in clients)
            hub = app.state.core.hub
            big = [(0.0, 0.0, 0.5, 0.5)] * 40  # past the 125-byte short frame length
            for n in range(30):
                hub.publish(EventStartMessage(event=make_event(n, "cam1", ended=False)))
                hub.publish(
                    MotionMessage(camera="cam1", ts=n, motion=n % 2 == 0, score=0.5, boxes=big)
                )
                await asyncio.sleep(0)  # a newer motion replaces an unsent one: let it go
            for ws in (a, b):
                got = [await recv_json(ws) for _ in range(60)]
                # Each event with the motion published right after it, in that order.
                assert [m["type"] for m in got] == ["event_start", "motion"] * 30
                starts = [m["event"]["id"] for m in got if m["type"] == "event_start"]
                assert starts == [make_event(n, "cam1").id for n in range(30)]
                motions = [m for m in got if m["type"] == "motion"]
                assert [m["ts"] for m in motions] == list(range(30))
                assert all(len(m["boxes"]) == 40 for m in motions)
            assert all(c.sent == 61 for c in clients)


async def test_a_plain_http_request_for_the_feed_is_told_to_upgrade(tmp_path: Path) -> None:
    settings = Settings(storage={"path": str(tmp_path)}, cameras=[])
    async with (
        uvicorn_on_free_port(create_app(settings)) as (port, _),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client,
    ):
        response = await client.get("/ws")
        assert response.status_code == 426, response.text
        assert response.headers["upgrade"] == "websocket"
        assert "WebSocket" in response.text
        # The feed itself still answers a WebSocket handshake on the same path.
        async with connect(f"ws://127.0.0.1:{port}/ws", subprotocols=["motionhub"]) as ws:
            assert (await recv_json(ws))["type"] == "hello"
