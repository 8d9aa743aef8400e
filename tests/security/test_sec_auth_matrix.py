"""Every route and the WebSocket, for every role: generated from the app's own route list.

A route added later is covered without touching this file: an API route must declare a
role (or be on the short public list), a WebSocket route gets the WebSocket matrix, and
anything else must be public. Roles: none (no token), a wrong token, viewer and admin.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute, APIWebSocketRoute, RouteContext, iter_route_contexts
from sec_harness import ADMIN, VIEWER, make_settings, serve
from starlette.routing import Mount, Route
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from server.auth import route_role
from server.events import utc
from server.messages import Event

# Routes anyone may call: probes, the API documentation and the dashboard's static files
# (the dashboard asks for a token and uses it on the API and the WebSocket).
PUBLIC = {
    "/healthz",
    "/readyz",
    "/openapi.json",
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
    "/",
    "/dashboard",
    "/ws",  # plain HTTP only: a 426 saying it is the WebSocket feed (the feed checks tokens)
}
WRONG = "x" * 24


def concrete_path(path: str, ids: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: ids[m.group(1)], path)


def body_for(route: RouteContext) -> dict[str, Any] | None:
    if getattr(route, "body_field", None) is None:
        return None
    # Deliberately incomplete: auth must be decided before the body is even looked at.
    return {"id": "matrix"}


async def call(
    client: httpx.AsyncClient, method: str, path: str, token: str | None, body: Any
) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with client.stream(method, path, headers=headers, json=body) as r:
        return r.status_code  # streams (MJPEG) are left after their headers


async def ws_outcome(url: str, token: str | None, first: str | None = None) -> str:
    """``hello:<role>`` or ``closed:<code>`` for one WebSocket connection."""
    offer: Any = ["motionhub", f"bearer.{token}"] if token else ["motionhub"]
    try:
        async with connect(url, subprotocols=offer, compression=None) as ws:
            if first is not None:
                await ws.send(first)
            msg = json.loads(await ws.recv())
            assert msg["type"] == "hello", msg
            return f"hello:{msg['role']}"
    except ConnectionClosed as exc:
        return f"closed:{exc.rcvd.code if exc.rcvd else None}"


async def test_auth_matrix_over_every_route_and_the_websocket(
    tmp_path: Path, sim_cameras: Any
) -> None:
    cams = [{"id": "cam1", "url": sim_cameras.mjpeg_url_for("busy")}]
    settings = make_settings(tmp_path, cams, server={"websocket": {"auth_timeout": 1.0}})
    async with serve(settings) as srv:
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
        http_checked = ws_checked = 0
        async with httpx.AsyncClient(base_url=srv.url, timeout=10) as client:
            for route in iter_route_contexts(srv.app.routes):
                original = route.original_route
                assert route.path is not None
                if isinstance(original, APIWebSocketRoute):
                    url = f"ws://127.0.0.1:{srv.port}{route.path}"
                    wrong_first = json.dumps({"type": "auth", "token": WRONG})
                    viewer_first = json.dumps({"type": "auth", "token": VIEWER})
                    matrix = {
                        "none": (await ws_outcome(url, None), "closed:1008"),
                        "wrong": (await ws_outcome(url, WRONG), "closed:1008"),
                        "wrong-first-message": (
                            await ws_outcome(url, None, wrong_first),
                            "closed:1008",
                        ),
                        "viewer": (await ws_outcome(url, VIEWER), "hello:viewer"),
                        "viewer-first-message": (
                            await ws_outcome(url, None, viewer_first),
                            "hello:viewer",
                        ),
                        "admin": (await ws_outcome(url, ADMIN), "hello:admin"),
                    }  # fmt: skip
                    for who, (got, expected) in matrix.items():
                        assert got == expected, (who, route.path, got)
                        ws_checked += 1
                    continue
                if not isinstance(original, APIRoute):
                    assert isinstance(original, Route | Mount), original
                    assert route.path in PUBLIC, f"unexpected non-API route {route.path}"
                    continue
                role = route_role(route)
                if role is None:
                    assert route.path in PUBLIC, f"{route.path} declares no role, is not public"
                path = concrete_path(route.path, ids)
                body = body_for(route)
                # Admin last: its DELETE really deletes.
                for method in sorted(route.methods or ()):
                    for who, token, allowed in [
                        ("none", None, role is None),
                        ("wrong", WRONG, role is None),
                        ("viewer", VIEWER, role in (None, "viewer")),
                        ("admin", ADMIN, True),
                    ]:
                        status = await call(client, method, path, token, body)
                        if allowed:
                            assert status not in (401, 403), (who, method, path, status)
                        else:
                            refused = 403 if who == "viewer" else 401
                            assert status == refused, (who, method, path, status)
                        http_checked += 1
            r = await client.get("/api/cameras")
            assert r.status_code == 401
            assert r.json() == {"detail": "missing or invalid bearer token"}
            assert r.headers["www-authenticate"] == "Bearer"
            viewer = {"Authorization": f"Bearer {VIEWER}"}
            r = await client.delete(f"/api/events/{ev_id}", headers=viewer)
            assert r.status_code == 403
            assert "admin" in r.json()["detail"]
    print(f"\nauth matrix: {http_checked} HTTP checks, {ws_checked} WebSocket checks")
    assert http_checked >= 4 * 12
    assert ws_checked == 6


@pytest.mark.parametrize("header", ["Basic abc", "Bearer", "bearer x", ADMIN, f"Token {ADMIN}"])
async def test_malformed_authorization_is_401(tmp_path: Path, header: str) -> None:
    async with serve(make_settings(tmp_path, [])) as srv:
        r = await srv.client.get("/api/cameras", headers={"Authorization": header})
        assert r.status_code == 401
