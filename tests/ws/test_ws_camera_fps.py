"""A camera's frame rate reaches clients as it settles, not only when its status changes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from ws_harness import recv_json, uvicorn_on_free_port

from server.app import create_app
from server.config import Settings
from server.core import fps_moved

VIEWER = "viewer-token-0123456789abcdef"


def test_fps_moved_ignores_jitter_and_follows_real_change() -> None:
    assert not fps_moved(10.0, 10.4)
    assert not fps_moved(10.0, 9.6)
    assert fps_moved(0.0, 9.8)
    assert fps_moved(10.0, 5.0)
    assert fps_moved(25.0, 22.0)
    assert not fps_moved(25.0, 23.0)


@pytest.mark.slow
async def test_camera_status_carries_the_measured_frame_rate(
    tmp_path: Path, sim_cameras: Any
) -> None:
    settings = Settings(
        server={"auth": {"tokens": [{"token": VIEWER, "role": "viewer"}]}},
        storage={"path": str(tmp_path)},
        cameras=[{"id": "cycle", "url": sim_cameras.mjpeg_url_for("cycle")}],
    )
    app = create_app(settings)
    async with uvicorn_on_free_port(app) as (port, _):
        url = f"ws://127.0.0.1:{port}/ws"
        async with connect(url, subprotocols=["motionhub", f"bearer.{VIEWER}"]) as ws:
            hello = await recv_json(ws)
            assert hello["type"] == "hello"
            # The simulated camera sends 10 fps; the first status (online) is announced
            # before a rate is measured, so a later camera_status must carry it.
            rates: list[float] = []
            deadline = time.monotonic() + 30.0
            while not any(r >= 5.0 for r in rates):
                assert time.monotonic() < deadline, f"no frame rate announced: {rates}"
                msg = await recv_json(ws, 30)
                if msg["type"] == "camera_status":
                    assert msg["camera"] == "cycle"
                    rates.append(msg["fps"])
            assert max(rates) <= 15.0, rates
