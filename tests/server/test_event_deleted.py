"""``DELETE /api/events/{id}`` and retention tell the WebSocket clients of the event's
camera."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import Any

from server_harness import ADMIN, VIEWER, serve, settings_for
from websockets.asyncio.client import connect

from server.events import utc
from server.messages import Event


async def _recv(ws: Any, wait: float = 5.0) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), wait))
    return data


async def _types_within(ws: Any, seconds: float) -> list[str]:
    """The types of the messages that arrive within ``seconds``."""
    types: list[str] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            while True:
                types.append((await _recv(ws, seconds))["type"])
    return types


async def _subscribed(url: str, cameras: list[str]) -> Any:
    ws = await connect(url, subprotocols=["motionhub", f"bearer.{VIEWER}"])
    assert (await _recv(ws))["type"] == "hello"
    await ws.send(json.dumps({"type": "subscribe", "cameras": cameras}))
    while (await _recv(ws))["type"] != "subscribed":
        pass
    return ws


def _ended(srv: Any, camera: str, start: float) -> str:
    """Store an ended event of ``camera`` starting at ``start``; its id."""
    ev_id: str = srv.core.ids.new(start)
    srv.core.storage.save_event(
        Event(id=ev_id, camera=camera, start=utc(start), end=utc(start + 2), peak_score=0.2)
    )
    return ev_id


async def test_a_deleted_event_reaches_the_clients_of_its_camera(tmp_path: Path) -> None:
    async with serve(settings_for(tmp_path, [], auth=True)) as srv:
        ev_id = _ended(srv, "gate", 1_750_000_000)
        url = f"ws://127.0.0.1:{srv.port}/ws"
        gate = await _subscribed(url, ["gate"])
        other = await _subscribed(url, ["porch"])
        try:
            admin = {"Authorization": f"Bearer {ADMIN}"}
            r = await srv.client.delete(f"/api/events/{ev_id}", headers=admin)
            assert r.status_code == 204
            msg = await _recv(gate)
            while msg["type"] in ("stats", "camera_status"):
                msg = await _recv(gate)
            assert msg == {"type": "event_deleted", "id": ev_id, "camera": "gate"}
            # A client of another camera is not told.
            assert "event_deleted" not in await _types_within(other, 0.5)
        finally:
            await gate.close()
            await other.close()


async def test_events_removed_by_retention_reach_the_clients_of_their_camera(
    tmp_path: Path,
) -> None:
    async with serve(settings_for(tmp_path, [], auth=True)) as srv:
        now = time.time()
        old = [_ended(srv, "gate", now - 100 + i) for i in range(2)]
        url = f"ws://127.0.0.1:{srv.port}/ws"
        gate = await _subscribed(url, ["gate"])
        other = await _subscribed(url, ["porch"])
        try:
            # A pass 31 days on: both events are past the default 30 days.
            assert await srv.core.storage.apply_retention(now + 31 * 86400) == 2
            got = []
            while len(got) < 2:
                msg = await _recv(gate)
                if msg["type"] not in ("stats", "camera_status"):
                    got.append(msg)
            assert got == [{"type": "event_deleted", "id": i, "camera": "gate"} for i in old]
            assert "event_deleted" not in await _types_within(other, 0.5)
        finally:
            await gate.close()
            await other.close()


async def test_a_retention_pass_removing_many_events_keeps_its_clients(tmp_path: Path) -> None:
    # More removed events than a client may have unsent (256 by default): announced all at
    # once, they would close the client as too slow.
    async with serve(settings_for(tmp_path, [], auth=True)) as srv:
        now = time.time()
        old = [_ended(srv, "gate", now - 1000 + i) for i in range(600)]
        await srv.core.storage.flush()
        gate = await _subscribed(f"ws://127.0.0.1:{srv.port}/ws", ["gate"])
        try:
            assert await srv.core.storage.apply_retention(now + 31 * 86400) == 600
            got: list[str] = []
            while len(got) < 600:
                msg = await _recv(gate)
                if msg["type"] == "event_deleted":
                    got.append(msg["id"])
            assert got == old
        finally:
            await gate.close()


async def test_the_event_count_falls_when_events_are_deleted_or_retired(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, [], auth=True)
    now = time.time()
    async with serve(settings) as srv:
        retired = [_ended(srv, "gate", now - 1000 + i) for i in range(2)]
        kept = [_ended(srv, "gate", now - 10 + i) for i in range(2)]
        await srv.core.storage.flush()
    viewer = {"Authorization": f"Bearer {VIEWER}"}
    admin = {"Authorization": f"Bearer {ADMIN}"}
    # Started again over the same store, the server counts what is there.
    async with serve(settings) as srv:

        async def counted() -> tuple[int, int]:
            r = await srv.client.get("/api/status", headers=viewer)
            assert r.status_code == 200, r.text
            stored, _ = await srv.core.storage.count_events_and_removed()
            return r.json()["storage"]["events"], stored

        assert await counted() == (4, 4)
        r = await srv.client.delete(f"/api/events/{kept[0]}", headers=admin)
        assert r.status_code == 204
        assert await counted() == (3, 3)
        # Deleting it again removes nothing, and the count stays.
        r = await srv.client.delete(f"/api/events/{kept[0]}", headers=admin)
        assert r.status_code == 404
        assert await counted() == (3, 3)
        # A pass whose cutoff (retention_days before it) falls between the two pairs.
        assert await srv.core.storage.apply_retention(now + 30 * 86400 - 500) == len(retired)
        assert await counted() == (1, 1)
