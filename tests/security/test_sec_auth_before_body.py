"""Routes that need a role refuse a caller before they read the request body (a real uvicorn).

A caller with no token, or too low a role, gets the same 401/403 whatever the body is:
broken JSON, a body the parser would refuse, or one it never sees because it is not read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sec_harness import ADMIN, VIEWER, make_settings, serve

GARBAGE = b"{garbage"
DEEP = b"[" * 100_000 + b"]" * 100_000
WRITES = [
    ("POST", "/api/cameras"),
    ("PATCH", "/api/cameras/c1"),
    ("DELETE", "/api/cameras/c1"),
    ("DELETE", "/api/events/nope"),
]


async def _send(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    token: str | None,
    body: bytes | AsyncIterator[bytes],
) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    return await client.request(method, path, headers=headers, content=body)


@pytest.mark.parametrize("body", [GARBAGE, DEEP], ids=["broken-json", "deeply-nested"])
async def test_admin_routes_refuse_before_parsing_the_body(tmp_path: Path, body: bytes) -> None:
    settings = make_settings(tmp_path, [], server={"max_body_bytes": 1 << 20})
    async with serve(settings, token=None) as srv:
        for method, path in WRITES:
            r = await _send(srv.client, method, path, None, body)
            assert r.status_code == 401, (method, path, r.text)
            assert r.json() == {"detail": "missing or invalid bearer token"}
            assert r.headers["www-authenticate"] == "Bearer"
            r = await _send(srv.client, method, path, "x" * 24, body)
            assert r.status_code == 401, (method, path, r.text)
            r = await _send(srv.client, method, path, VIEWER, body)
            assert r.status_code == 403, (method, path, r.text)
            assert r.json() == {"detail": "this needs the admin role"}
            assert "www-authenticate" not in r.headers
        # The admin's broken body still reaches the parser.
        r = await _send(srv.client, "PATCH", "/api/cameras/c1", ADMIN, GARBAGE)
        assert r.status_code == 422
        assert r.json()["detail"][0]["type"] == "json_invalid"


async def test_a_streamed_oversized_body_without_a_token_is_401(tmp_path: Path) -> None:
    """A body of unannounced size is never read for a caller without a token, so the size
    limit (found only while reading) does not come into it."""
    settings = make_settings(tmp_path, [], server={"max_body_bytes": 1024})

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(8):
            yield b"x" * 512

    async with serve(settings, token=None) as srv:
        r = await _send(srv.client, "POST", "/api/cameras", None, chunks())
        assert r.status_code == 401, r.text
        r = await _send(srv.client, "POST", "/api/cameras", ADMIN, chunks())
        assert r.status_code == 413, r.text
