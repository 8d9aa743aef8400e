"""Camera changes survive a restart (the auth matrix lives in tests/security)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from server_harness import serve, settings_for


async def test_camera_changes_persist_across_restart(tmp_path: Path, sim_cameras: Any) -> None:
    data = tmp_path / "data"

    def file_cameras() -> list[dict[str, Any]]:
        return [
            {"id": "a", "url": sim_cameras.mjpeg_url_for("busy")},
            {"id": "b", "url": sim_cameras.mjpeg_url_for("cycle"), "name": "Bee"},
        ]

    async with serve(settings_for(data, file_cameras())) as srv:
        c = srv.client
        r = await c.post("/api/cameras", json={"id": "c", "url": sim_cameras.mjpeg_url_for("busy")})
        assert r.status_code == 201
        zone = {"name": "gate", "points": [[0, 0], [1, 0], [1, 1]]}
        r = await c.patch("/api/cameras/b", json={"name": "Bee two", "zones": [zone]})
        assert r.status_code == 200
        assert (await c.delete("/api/cameras/a")).status_code == 204
        before = (await c.get("/api/cameras")).json()["cameras"]

    async with serve(settings_for(data, file_cameras())) as srv:
        after = (await srv.client.get("/api/cameras")).json()["cameras"]
        assert [cam["id"] for cam in after] == ["b", "c"]
        assert after[0]["name"] == "Bee two"
        assert after[0]["zones"] == [zone]

        def settings_of(cams: list[dict[str, Any]]) -> list[dict[str, Any]]:
            keep = ("id", "name", "url", "detect", "events", "zones", "masks")
            return [{k: cam[k] for k in keep} for cam in cams]

        assert settings_of(after) == settings_of(before)
        assert [cam.id for cam in srv.core.settings.cameras] == ["b", "c"]


# The auth matrix over every route and the WebSocket: tests/security/test_sec_auth_matrix.py.
