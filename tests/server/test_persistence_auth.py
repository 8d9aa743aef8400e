"""Camera changes survive a restart; every route enforces its role (generated from the routes)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute, APIWebSocketRoute, RouteContext, iter_route_contexts
from server_harness import ADMIN, VIEWER, serve, settings_for
from starlette.routing import Mount, Route

from server.auth import route_role
from server.events import utc
from server.messages import Event

# Routes anyone may call: probes, the API documentation and the dashboard's static files
# (the dashboard asks for a token and uses it on the API).
PUBLIC = {
    "/healthz",
    "/readyz",
    "/openapi.json",
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
    "/",
    "/dashboard",
}


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


def concrete_path(path: str, ids: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: ids[m.group(1)], path)


def body_for(route: RouteContext) -> dict[str, Any] | None:
    if getattr(route, "body_field", None) is None:
        return None
    # Deliberately incomplete: auth must be decided before the body is even looked at.
    return {"id": "matrix"}


async def call(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    token: str | None,
    body: dict[str, Any] | None,
) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with client.stream(method, path, headers=headers, json=body) as r:
        return r.status_code  # streams (MJPEG) are left after their headers


async def test_auth_matrix_over_every_route(tmp_path: Path, sim_cameras: Any) -> None:
    cams = [{"id": "cam1", "url": sim_cameras.mjpeg_url_for("busy")}]
    async with serve(settings_for(tmp_path, cams, auth=True)) as srv:
        ev_id = srv.core.ids.new(1_750_000_000)
        srv.core.storage.save_event(
            Event(
                id=ev_id,
                camera="cam1",
                start=utc(1_750_000_000),
                end=utc(1_750_000_002),
                peak_score=0.5,
            )
        )
        ids = {"camera_id": "cam1", "event_id": ev_id}
        checked = 0
        for route in iter_route_contexts(srv.app.routes):
            original = route.original_route
            assert route.path is not None
            if isinstance(original, APIWebSocketRoute):
                continue  # the WebSocket checks tokens itself; the WebSocket tests cover it
            if not isinstance(original, APIRoute):
                assert isinstance(original, Route | Mount), original
                assert route.path in PUBLIC, f"unexpected non-API route {route.path}"
                continue
            role = route_role(route)
            if role is None:
                assert route.path in PUBLIC, f"{route.path} declares no role and is not public"
            path = concrete_path(route.path, ids)
            body = body_for(route)
            # Admin last: its DELETE really deletes.
            for method in sorted(route.methods or ()):
                for who, token, allowed in [
                    ("none", None, role is None),
                    ("wrong", "x" * 24, role is None),
                    ("viewer", VIEWER, role in (None, "viewer")),
                    ("admin", ADMIN, True),
                ]:
                    status = await call(srv.client, method, path, token, body)
                    if allowed:
                        assert status not in (401, 403), (who, method, path, status)
                    else:
                        expected = 403 if who == "viewer" else 401
                        assert status == expected, (who, method, path, status)
                    checked += 1
        assert checked >= 4 * 12
        r = await srv.client.get("/api/cameras")
        assert r.status_code == 401
        assert r.json() == {"detail": "missing or invalid bearer token"}
        assert r.headers["www-authenticate"] == "Bearer"
        r = await srv.client.delete(
            "/api/events/" + ev_id, headers={"Authorization": f"Bearer {VIEWER}"}
        )
        assert r.status_code == 403
        assert "admin" in r.json()["detail"]


@pytest.mark.parametrize("header", ["Basic abc", "Bearer", "bearer x", ADMIN, f"Token {ADMIN}"])
async def test_malformed_authorization_is_401(tmp_path: Path, header: str) -> None:
    async with serve(settings_for(tmp_path, [], auth=True)) as srv:
        r = await srv.client.get("/api/cameras", headers={"Authorization": header})
        assert r.status_code == 401
