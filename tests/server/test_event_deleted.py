"""``DELETE /api/events/{id}`` tells the WebSocket clients of the event's camera."""

from __future__ import annotations

import asyncio
import contextlib
import json
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


async def test_a_deleted_event_reaches_the_clients_of_its_camera(tmp_path: Path) -> None:
    async with serve(settings_for(tmp_path, [], auth=True)) as srv:
        ev_id = srv.core.ids.new(1_750_000_000)
        srv.core.storage.save_event(
            Event(
                id=ev_id,
                camera="gate",
                start=utc(1_750_000_000),
                end=utc(1_750_000_002),
                peak_score=0.2,
            )
        )
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
