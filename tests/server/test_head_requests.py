"""HEAD answers as GET does, without a body, on every kind of GET route (a real uvicorn)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from server_harness import VIEWER, serve, settings_for

AUTH = {"Authorization": f"Bearer {VIEWER}"}
FIXED = ("/", "/dashboard/app.js", "/docs", "/openapi.json", "/healthz")


async def _same(c: httpx.AsyncClient, path: str, headers: dict[str, str]) -> httpx.Response:
    """HEAD answers as GET. Live bodies (metrics, status, cameras, events, snapshots) change
    from one request to the next, so only fixed ones are compared by length."""
    get = await c.get(path, headers=headers)
    head = await c.head(path, headers=headers)
    assert head.status_code == get.status_code, path
    assert head.content == b"", path
    names = ["content-type", "cache-control", "www-authenticate", "etag", "content-security-policy"]
    if get.status_code in (401, 404) or path in FIXED:
        names.append("content-length")
    for name in names:
        assert head.headers.get(name) == get.headers.get(name), (path, name)
    return head


async def test_head_answers_like_get(tmp_path: Path, sim_cameras: Any) -> None:
    cams = [{"id": "a", "url": sim_cameras.mjpeg_url_for("busy")}]
    async with serve(settings_for(tmp_path / "data", cams, auth=True)) as srv:
        c = srv.client
        for path in ("/api/cameras", "/api/status", "/metrics", "/api/events"):
            assert (await _same(c, path, {})).status_code == 401  # no token: 401 as for GET
            assert (await _same(c, path, AUTH)).status_code == 200
        assert (await _same(c, "/api/cameras/nope", AUTH)).status_code == 404
        for path in ("/", "/dashboard/app.js", "/docs", "/readyz", "/healthz"):
            assert (await _same(c, path, {})).status_code in (200, 503), path
        # The schema builds without a duplicate operation (a route declaring HEAD itself).
        assert (await _same(c, "/openapi.json", {})).status_code == 200
        c.headers.update(AUTH)
        await srv.wait_online("a")
        assert (await _same(c, "/api/cameras/a/snapshot.jpg", AUTH)).status_code == 200

        # A live stream's HEAD ends at once, with the stream's headers.
        head = await c.head("/api/cameras/a/stream.mjpeg", headers=AUTH, timeout=5)
        assert head.status_code == 200
        assert head.content == b""
        assert head.headers["content-type"].startswith("multipart/x-mixed-replace")

        # A method the route lacks is refused with the methods it has, HEAD among them.
        r = await c.put("/api/events", headers=AUTH)
        assert r.status_code == 405
        assert r.headers["allow"] == "GET, HEAD"


async def test_405_allow_lists_every_route_on_the_path(tmp_path: Path, sim_cameras: Any) -> None:
    """One path served by several routes: ``Allow`` names the methods of all of them."""
    cams = [{"id": "a", "url": sim_cameras.mjpeg_url_for("busy")}]
    async with serve(settings_for(tmp_path / "data", cams, auth=True)) as srv:
        c = srv.client
        expected = {
            "/api/cameras": "GET, HEAD, POST",
            "/api/cameras/a": "GET, HEAD, PATCH, DELETE",
            "/api/cameras/nope": "GET, HEAD, PATCH, DELETE",
            "/api/events/x": "GET, HEAD, DELETE",
            "/healthz": "GET, HEAD",
        }
        for path, allow in expected.items():
            for method in ("PUT", "OPTIONS"):
                r = await c.request(method, path, headers=AUTH)
                assert r.status_code == 405, (method, path)
                assert r.headers["allow"] == allow, (method, path)
        head = await c.head("/api/cameras", headers=AUTH)
        assert head.status_code == 200
        r = await c.post("/api/cameras/a/snapshot.jpg", headers=AUTH)
        assert r.status_code == 405
        assert r.headers["allow"] == "GET, HEAD"
