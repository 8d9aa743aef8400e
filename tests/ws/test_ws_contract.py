"""The ``/ws`` contract, against a real uvicorn with the ``websockets`` client.

Covers every message type, both ways to authenticate, auth failures (1008), the
Origin check, subscribe, resume, error replies and the server's heartbeat.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import TypeAdapter
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus
from ws_harness import (
    ADMIN_TOKEN,
    VIEWER_TOKEN,
    LiveServer,
    close_code,
    closed_by_server,
    live_server,
    make_event,
    recv_json,
    recv_until,
)

from server.messages import (
    CameraRemoved,
    CameraStatusMessage,
    EventEndMessage,
    EventStartMessage,
    EventUpdateMessage,
    HelloMessage,
    MotionMessage,
    ServerMessage,
    StatsMessage,
)
from server.ws import FanOutLimits, WsOptions

server_message: TypeAdapter[ServerMessage] = TypeAdapter(ServerMessage)


def viewer(server: LiveServer, **kwargs: Any) -> Any:
    return connect(server.url, subprotocols=["motionhub", f"bearer.{VIEWER_TOKEN}"], **kwargs)


async def hello_of(ws: ClientConnection) -> HelloMessage:
    return HelloMessage.model_validate(await recv_json(ws))


async def close_code_of(ws: ClientConnection) -> int | None:
    return close_code(await closed_by_server(ws))


async def test_subprotocol_auth_then_every_live_message_type() -> None:
    async with live_server(["cam1", "cam2"]) as server, viewer(server) as ws:
        assert ws.subprotocol == "motionhub"
        hello = await hello_of(ws)
        assert hello.role == "viewer"
        assert hello.version
        assert [c.id for c in hello.cameras] == ["cam1", "cam2"]

        event = make_event(1, "cam1", ended=False)
        sent: list[ServerMessage] = [
            CameraStatusMessage(camera="cam1", status="offline", fps=0.0, last_error="timeout"),
            MotionMessage(
                camera="cam1",
                ts=time.time(),
                motion=True,
                score=0.25,
                boxes=[(0.1, 0.2, 0.3, 0.4)],
                zones={"door": True, "yard": False},
            ),
            EventStartMessage(event=event, ts=time.time()),
            EventUpdateMessage(event=event.model_copy(update={"zones": ["door", "yard"]})),
            EventEndMessage(event=event.model_copy(update={"end": datetime.now(UTC)})),
            StatsMessage(uptime=12.5, cameras_online=1, cameras_total=2, clients=1, events_total=1),
            CameraRemoved(camera="cam2", zones=["porch"]),
        ]
        for message in sent:
            server.services.hub.publish(message)
        received = [server_message.validate_python(await recv_json(ws)) for _ in sent]
        # All were queued before the client's writer ran: a client with a backlog gets
        # its events first, in order, then the newest state of each kind.
        events = [m for m in sent if m.type.startswith("event_") or m.type == "camera_removed"]
        states = [m for m in sent if m not in events]
        assert received == events + states


async def test_first_message_auth() -> None:
    async with live_server() as server, connect(server.url) as ws:
        # Nothing is sent before the client proves who it is.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws.recv(), 0.2)
        await ws.send(json.dumps({"type": "auth", "token": ADMIN_TOKEN}))
        hello = await hello_of(ws)
        assert hello.role == "admin"
        assert ws.subprotocol is None


async def test_no_token_needed_when_auth_is_off() -> None:
    async with live_server(auth=False) as server, connect(server.url) as ws:
        assert (await hello_of(ws)).role == "admin"


@pytest.mark.parametrize(
    ("subprotocols", "first", "reason"),
    [
        (["motionhub", "bearer.wrong-token-0123456789"], None, "invalid token"),
        (None, '{"type": "auth", "token": "wrong-token-0123456789"}', "invalid token"),
        (None, '{"type": "subscribe", "cameras": null}', "authentication required"),
        (None, "not json at all", "authentication required"),
        (None, None, "authentication timed out"),
    ],
    ids=["bad-subprotocol-token", "bad-auth-message", "not-auth-first", "garbage", "timeout"],
)
async def test_auth_failures_close_with_1008(
    subprotocols: list[str] | None, first: str | None, reason: str
) -> None:
    options = WsOptions(auth_timeout=0.3)
    async with (
        live_server(options=options) as server,
        connect(server.url, subprotocols=subprotocols) as ws,
    ):
        if first is not None:
            await ws.send(first)
        assert await close_code_of(ws) == 1008
        assert ws.close_reason == reason
        assert server.api.fanout.client_count == 0


async def test_invalid_token_later_in_the_session_closes_with_1008() -> None:
    async with live_server() as server, viewer(server) as ws:
        await hello_of(ws)
        await ws.send(json.dumps({"type": "auth", "token": ADMIN_TOKEN}))
        await ws.send('{"type": "subscribe", "cameras": null}')
        assert (await recv_json(ws))["type"] == "subscribed"
        await ws.send('{"type": "auth", "token": "not-a-valid-token-at-all"}')
        assert await close_code_of(ws) == 1008


async def test_origin_check() -> None:
    options = WsOptions(allowed_origins=("https://cams.example.org",))
    async with live_server(options=options) as server:
        port = server.url.split(":")[2].split("/")[0]
        for origin in ("https://evil.example.com", "null", f"http://localhost.evil:{port}"):
            with pytest.raises(InvalidStatus) as info:
                async with viewer(server, origin=origin):
                    pass
            assert info.value.response.status_code == 403
        for origin in (f"http://127.0.0.1:{port}", "https://cams.example.org", None):
            async with viewer(server, origin=origin) as ws:
                await hello_of(ws)


async def test_subscribe_filters_by_camera() -> None:
    async with live_server(["cam1", "cam2", "cam3"]) as server, viewer(server) as ws:
        hub = server.services.hub
        await hello_of(ws)
        await ws.send('{"type": "subscribe", "cameras": ["cam1", "cam3"]}')
        assert await recv_json(ws) == {"type": "subscribed", "cameras": ["cam1", "cam3"]}
        for camera in ("cam2", "cam1", "cam3"):
            hub.publish(MotionMessage(camera=camera, ts=1.0, motion=True, score=0.1))
            hub.publish(EventStartMessage(event=make_event(1, camera, ended=False)))
        hub.publish(StatsMessage(uptime=1, cameras_online=3, cameras_total=3, clients=1,
                                 events_total=0))  # fmt: skip
        got = [await recv_json(ws) for _ in range(5)]
        assert [(m["type"], m.get("camera") or m.get("event", {}).get("camera")) for m in got] == [
            ("event_start", "cam1"),
            ("event_start", "cam3"),
            ("motion", "cam1"),
            ("motion", "cam3"),
            ("stats", None),
        ]
        await ws.send('{"type": "subscribe", "cameras": null}')
        assert await recv_json(ws) == {"type": "subscribed", "cameras": None}
        hub.publish(MotionMessage(camera="cam2", ts=2.0, motion=False, score=0.0))
        assert (await recv_json(ws))["camera"] == "cam2"


async def test_resume_replays_missed_events_in_order() -> None:
    async with live_server(["cam1", "cam2"], options=WsOptions(replay_limit=3)) as server:
        stored = [make_event(n, "cam1" if n % 2 else "cam2", ended=n < 6) for n in range(1, 7)]
        server.services.events = stored
        async with viewer(server) as ws:
            await hello_of(ws)
            await ws.send(json.dumps({"type": "resume", "since": stored[1].id}))
            replay = await recv_until(ws, "resumed")
            assert [m["event"]["id"] for m in replay[:-1]] == [e.id for e in stored[2:5]]
            assert {m["type"] for m in replay[:-1]} == {"event_end"}
            assert replay[-1] == {
                "type": "resumed",
                "since": stored[1].id,
                "count": 3,
                "more": True,
            }
            # Continue from the last id seen; the open event comes as event_start.
            await ws.send(json.dumps({"type": "resume", "since": stored[4].id}))
            replay = await recv_until(ws, "resumed")
            assert [(m["type"], m["event"]["id"]) for m in replay[:-1]] == [
                ("event_start", stored[5].id)
            ]
            assert replay[-1]["more"] is False

            await ws.send('{"type": "subscribe", "cameras": ["cam2"]}')
            await recv_until(ws, "subscribed")
            await ws.send('{"type": "resume", "since": ""}')
            replay = await recv_until(ws, "resumed")
            assert {m["event"]["camera"] for m in replay[:-1]} == {"cam2"}


async def test_resume_failure_is_reported_and_the_session_continues() -> None:
    async with live_server() as server, viewer(server) as ws:
        await hello_of(ws)
        server.services.fail_reads = True
        await ws.send('{"type": "resume", "since": ""}')
        error = await recv_json(ws)
        assert error["type"] == "error"
        assert error["code"] == "resume_failed"
        await ws.send('{"type": "subscribe", "cameras": null}')
        assert (await recv_json(ws))["type"] == "subscribed"


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", "invalid_json"),
        ("{}", "invalid_message"),
        ('{"type": "launch"}', "invalid_message"),
        ('{"type": "subscribe", "cameras": "cam1"}', "invalid_message"),
        ('{"type": "resume"}', "invalid_message"),
        ('{"type": "resume", "since": "1", "extra": true}', "invalid_message"),
        ('{"type": "resume", "since": "zz"}', "invalid_message"),
        ('{"type": "resume", "since": "01jd8x3yq6w1b5m0k2z4r7t9vc"}', "invalid_message"),
        ("[1, 2, 3]", "invalid_message"),
        (b"\x00\x01binary", "unsupported"),
        ("x" * 20_000, "too_large"),
    ],
    ids=lambda v: str(v)[:20],
)
async def test_invalid_messages_get_an_error_and_change_nothing(
    frame: str | bytes, code: str
) -> None:
    async with live_server() as server, viewer(server) as ws:
        await hello_of(ws)
        await ws.send(frame)
        error = await recv_json(ws)
        assert error["type"] == "error"
        assert error["code"] == code
        assert error["message"]
        # The input is never reflected back.
        assert "launch" not in error["message"]
        await ws.send('{"type": "subscribe", "cameras": null}')
        assert (await recv_json(ws))["type"] == "subscribed"


async def test_server_pings_and_closes_a_dead_peer() -> None:
    # A live client answers pings (the websockets client does so by itself).
    async with (
        live_server(auth=False, ws_ping_interval=0.2, ws_ping_timeout=0.3) as server,
        connect(server.url, ping_interval=None) as live,
    ):
        await hello_of(live)
        # A dead peer: completes the handshake, then never answers anything.
        port = int(server.url.split(":")[2].split("/")[0])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        status = await asyncio.wait_for(reader.readline(), 5)
        assert b" 101 " in status
        await asyncio.sleep(1.0)
        assert server.api.fanout.client_count == 1, "the dead peer is gone, the live one stays"
        # Everything the server sent, then end of stream: it closed the connection.
        rest = await asyncio.wait_for(reader.read(), 5)
        assert b"\x89" in rest, "the server sent a ping"
        writer.close()
        await live.send('{"type": "subscribe", "cameras": null}')
        assert (await recv_json(live))["type"] == "subscribed"


async def test_client_limit_closes_with_1013() -> None:
    async with live_server(limits=FanOutLimits(max_clients=1)) as server, viewer(server) as first:
        await hello_of(first)
        async with viewer(server) as second:
            assert await close_code_of(second) == 1013
        await first.send('{"type": "subscribe", "cameras": null}')
        assert (await recv_json(first))["type"] == "subscribed"


async def test_server_shutdown_closes_clients() -> None:
    async with live_server() as server:
        ws = await viewer(server)
        await hello_of(ws)
    assert await close_code_of(ws) in (1001, 1012)
