"""Browser safety, request limits and the camera URL policy, through the real app.

* CORS is off unless configured: a foreign origin gets no ``Access-Control-Allow-*``; a
  configured one does. The WebSocket refuses a foreign ``Origin`` (cross-site hijacking).
* The dashboard carries a CSP without inline scripts and with ``frame-ancestors``, and no
  response anywhere sets a cookie (if one ever does, it must be HttpOnly and SameSite).
* Oversized bodies get 413, too many cameras and oversized polygons 422, each with words.
* Camera URLs: only the allowed schemes, files only under ``media_dir``, FFmpeg fenced
  per source kind, and ``allowed_networks`` as an allow-list.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import h11
import httpx
import pytest
from sec_harness import ADMIN, make_settings, serve
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from server.cameras.policy import FILE_FORMATS, PROTOCOL_WHITELIST
from server.dashboard import STATIC_DIR

EVIL = "https://evil.example.com"
GOOD = "https://cams.example.org"
SQUARE = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]


class _Scripts(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.inline: list[str] = []
        self.handlers: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {k for k, _ in attrs}
        self.handlers += [f"{tag}.{k}" for k in names if k.startswith("on")]
        if tag == "script" and "src" not in names:
            self.inline.append(tag)
        for k, v in attrs:
            if k in ("href", "src") and (v or "").strip().lower().startswith("javascript:"):
                self.handlers.append(f"{tag}.{k}")


# ---- CORS, headers, cookies, WebSocket Origin ---------------------------------------------


async def test_cors_is_off_by_default(tmp_path: Path) -> None:
    async with serve(make_settings(tmp_path, [])) as srv:
        r = await srv.client.get("/api/cameras", headers={"Origin": EVIL})
        assert r.status_code == 200
        assert not [h for h in r.headers if h.lower().startswith("access-control-")]
        pre = await srv.client.options(
            "/api/cameras",
            headers={"Origin": EVIL, "Access-Control-Request-Method": "DELETE",
                     "Access-Control-Request-Headers": "authorization"},
        )  # fmt: skip
        assert "access-control-allow-origin" not in pre.headers
        assert pre.status_code in (404, 405)


async def test_cors_allows_only_the_configured_origins(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, [], server={"cors_origins": [GOOD]})
    async with serve(settings) as srv:
        pre = await srv.client.options(
            "/api/cameras",
            headers={"Origin": GOOD, "Access-Control-Request-Method": "POST",
                     "Access-Control-Request-Headers": "authorization,content-type"},
        )  # fmt: skip
        assert pre.status_code == 200
        assert pre.headers["access-control-allow-origin"] == GOOD
        assert "POST" in pre.headers["access-control-allow-methods"]
        r = await srv.client.get("/api/cameras", headers={"Origin": GOOD})
        assert r.headers["access-control-allow-origin"] == GOOD
        bad = await srv.client.get("/api/cameras", headers={"Origin": EVIL})
        assert "access-control-allow-origin" not in bad.headers
        refused = await srv.client.options(
            "/api/cameras", headers={"Origin": EVIL, "Access-Control-Request-Method": "POST"}
        )
        assert refused.status_code == 400
        assert "access-control-allow-origin" not in refused.headers


async def test_dashboard_headers_no_inline_script_and_no_cookies(tmp_path: Path) -> None:
    async with serve(make_settings(tmp_path, [])) as srv:
        pages = ["/", "/dashboard/app.js", "/dashboard/style.css", "/dashboard/nosuch.js"]
        for path in pages:
            r = await srv.client.get(path)
            csp = r.headers["content-security-policy"]
            directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
            assert directives["script-src"] == "'self'", path
            assert "unsafe-inline" not in csp
            assert "unsafe-eval" not in csp
            assert directives["frame-ancestors"] == "'none'"
            assert directives["object-src"] == "'none'"
            assert r.headers["x-frame-options"] == "DENY"
            assert r.headers["x-content-type-options"] == "nosniff"
        # The CSP forbids inline scripts; the pages must not need any.
        for html in STATIC_DIR.glob("*.html"):
            parser = _Scripts()
            parser.feed(html.read_text())
            assert parser.inline == [], f"inline <script> in {html.name}"
            assert parser.handlers == [], f"inline handlers in {html.name}: {parser.handlers}"
        # No route sets a cookie; any that ever does must be HttpOnly and SameSite.
        paths = [str(getattr(r, "path", "")) for r in srv.app.routes]
        paths = [p for p in paths if p and "{" not in p]
        for path in [*paths, *pages, "/api/cameras/nosuch"]:
            for token in (None, ADMIN):
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                async with httpx.AsyncClient(base_url=srv.url, timeout=10) as client:
                    r = await client.get(path, headers=headers)
                for cookie in r.headers.get_list("set-cookie"):
                    assert "httponly" in cookie.lower(), (path, cookie)
                    assert "samesite" in cookie.lower(), (path, cookie)
                assert not r.headers.get_list("set-cookie"), path


@pytest.mark.parametrize("origins", [[], [GOOD]])
async def test_websocket_refuses_cross_site_origins(tmp_path: Path, origins: list[str]) -> None:
    settings = make_settings(tmp_path, [], server={"cors_origins": origins})
    async with serve(settings) as srv:
        url = f"ws://127.0.0.1:{srv.port}/ws"
        offer: Any = ["motionhub", f"bearer.{ADMIN}"]
        for origin in (EVIL, "null", f"http://127.0.0.1.evil.example:{srv.port}"):
            with pytest.raises(InvalidStatus) as info:
                async with connect(url, subprotocols=offer, origin=origin):  # type: ignore[arg-type]
                    pass
            assert info.value.response.status_code == 403
        allowed = [f"http://127.0.0.1:{srv.port}", *origins]
        for origin in allowed:
            async with connect(url, subprotocols=offer, origin=origin) as ws:  # type: ignore[arg-type]
                assert '"hello"' in str(await ws.recv())


# ---- request limits ---------------------------------------------------------------------


async def _expect_continue_upload(port: int, length: int) -> tuple[int, Any]:
    """Send only the headers of a ``length``-byte POST with ``Expect: 100-continue`` and
    read the answer: (status, JSON). The body is never sent."""
    client = h11.Connection(h11.CLIENT)
    request = h11.Request(
        method="POST",
        target="/api/cameras",
        headers=[
            ("Host", f"127.0.0.1:{port}"),
            ("Authorization", f"Bearer {ADMIN}"),
            ("Content-Type", "application/json"),
            ("Content-Length", str(length)),
            ("Expect", "100-continue"),
        ],
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(client.send(request) or b"")
        answer = await asyncio.wait_for(reader.read(), 10)  # the server closes after it
    finally:
        writer.close()
    client.receive_data(answer)
    client.receive_data(b"")
    response = client.next_event()
    assert isinstance(response, h11.Response), answer
    content = b""
    while isinstance(event := client.next_event(), h11.Data):
        content += event.data
    assert isinstance(event, h11.EndOfMessage), (answer, event)
    return response.status_code, json.loads(content)


async def test_request_limits_answer_with_a_message(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, [], server={"max_body_bytes": 4096, "max_cameras": 2})
    async with serve(settings) as srv:
        c = srv.client
        json_type = {"Content-Type": "application/json"}
        refusal = {"detail": "request body larger than 4096 bytes"}
        # An ordinary client writes the whole body before it reads: it must get the answer,
        # not a connection reset, whether the body is over the limit by its Content-Length
        # or, sent in chunks, while it is read. Bodies of 6 kB to 2 MB, several times each.
        for size in (6000, 300_000, 2 << 20):
            big = json.dumps({"id": "big", "url": "rtsp://127.0.0.1:9/x", "name": "n" * size})
            for _ in range(3):
                r = await c.post("/api/cameras", content=big.encode(), headers=json_type)
                assert (r.status_code, r.json()) == (413, refusal), size

                async def chunks(body: bytes = big.encode()) -> AsyncIterator[bytes]:
                    for i in range(0, len(body), 65536):
                        yield body[i : i + 65536]

                r = await c.post("/api/cameras", content=chunks(), headers=json_type)
                assert (r.status_code, r.json()) == (413, refusal), size
        # A client that waits for "100 Continue" is answered before it sends anything.
        assert await _expect_continue_upload(srv.port, 2 << 20) == (413, refusal)
        assert (await c.get("/api/cameras")).json()["cameras"] == []

        for i in range(2):
            body = {"id": f"c{i}", "url": "rtsp://127.0.0.1:9/x", "enabled": False}
            r = await c.post("/api/cameras", json=body)
            assert r.status_code == 201
        r = await c.post("/api/cameras", json={"id": "c2", "url": "rtsp://127.0.0.1:9/x"})
        assert r.status_code == 422
        assert r.json()["detail"][0]["msg"] == "server.max_cameras is 2; delete a camera first"

        def polygon(n: int) -> list[list[float]]:
            return [[0.5 + 0.4 * (i % 2), i / n] for i in range(n)]

        cases: list[tuple[dict[str, Any], list[Any]]] = [
            ({"zones": [{"name": "z", "points": polygon(65)}]}, ["body", "zones", 0, "points"]),
            ({"masks": [polygon(65)]}, ["body", "masks", 0]),
            (
                {"zones": [{"name": f"z{i}", "points": SQUARE} for i in range(33)]},
                ["body", "zones"],
            ),
            ({"masks": [SQUARE] * 33}, ["body", "masks"]),
            ({"zones": [{"name": "z", "points": SQUARE[:2]}]}, ["body", "zones", 0, "points"]),
        ]
        for body, where in cases:
            r = await c.patch("/api/cameras/c0", json=body)
            assert r.status_code == 422, body
            (err,) = r.json()["detail"]
            assert err["loc"] == where
            assert re.search(r"at (most|least) \d+ item", err["msg"]), err
        largest = {"zones": [{"name": "z", "points": polygon(64)}]}
        ok = await c.patch("/api/cameras/c0", json=largest)
        assert ok.status_code == 200


async def _raw_exchange(port: int, data: bytes) -> bytes:
    """Write ``data`` on a new connection and read until the server closes it (or 10 s)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


async def test_oversized_request_heads_get_431_and_the_server_goes_on(tmp_path: Path) -> None:
    limit = 8192
    settings = make_settings(tmp_path, [], server={"max_header_bytes": limit})
    async with serve(settings) as srv:
        c = srv.client
        # Just under the limit, with a body far larger than it: answered normally.
        filler = {"X-Filler": "f" * (limit - 600)}
        body = {"id": "big", "url": "rtsp://127.0.0.1:9/x", "name": "n" * 200_000}
        r = await c.post("/api/cameras", json=body, headers=filler)
        assert r.status_code == 422, r.text  # the name is too long: the app saw the request
        # Over it: one long header, many headers, a long URL, each in a whole request.
        head = f"Host: x\r\nAuthorization: Bearer {ADMIN}\r\n"
        cases = {
            "long header": f"GET /api/cameras HTTP/1.1\r\n{head}X-Big: {'a' * 2 * limit}\r\n\r\n",
            "many headers": "GET /api/cameras HTTP/1.1\r\n"
            + head
            + "".join(f"X-H{i}: {'v' * 90}\r\n" for i in range(200))
            + "\r\n",
            "long URL": f"GET /api/cameras?q={'u' * 2 * limit} HTTP/1.1\r\n{head}\r\n",
        }
        for what, request in cases.items():
            answer = await _raw_exchange(srv.port, request.encode())
            status_line, _, rest = answer.partition(b"\r\n")
            assert status_line == b"HTTP/1.1 431 Request Header Fields Too Large", (what, answer)
            message = json.loads(rest.partition(b"\r\n\r\n")[2])
            assert message == {"detail": f"request line and headers larger than {limit} bytes"}
        # A head that never ends: the server stops reading it after the limit and closes
        # the connection (with a 431 or, as bytes it will not read keep coming, a reset),
        # long before the client is done writing 64 MB.
        reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        writer.write(f"GET /api/cameras HTTP/1.1\r\n{head}X-Big: ".encode())
        written = 0
        with contextlib.suppress(ConnectionError):
            while written < 64 << 20:
                writer.write(b"a" * 65536)
                await asyncio.wait_for(writer.drain(), 10)
                written += 65536
        with contextlib.suppress(ConnectionError):
            answer = await asyncio.wait_for(reader.read(), 10)
            assert answer == b"" or answer.startswith(b"HTTP/1.1 431 "), answer[:200]
        writer.close()
        assert written < 16 << 20, f"the server read {written} bytes of one request head"
        # Keep-alive: a request with a body, then one more on the same connection.
        two = (
            f"POST /api/cameras HTTP/1.1\r\n{head}Content-Type: application/json\r\n"
            f"Content-Length: 2\r\n\r\n{{}}"
            f"GET /api/cameras HTTP/1.1\r\n{head}Connection: close\r\n\r\n"
        )
        answer = await _raw_exchange(srv.port, two.encode())
        assert answer.startswith(b"HTTP/1.1 422 "), answer
        assert answer.count(b"HTTP/1.1 200 OK") == 1, answer
        assert (await c.get("/api/cameras")).json()["cameras"] == []


# ---- camera URL policy --------------------------------------------------------------------


async def test_camera_url_policy_through_the_api(tmp_path: Path, sim_cameras: Any) -> None:
    media = tmp_path / "media"
    media.mkdir()
    (media / "clip.mp4").write_bytes(b"\0" * 16)
    (tmp_path / "outside.mp4").write_bytes(b"\0" * 16)
    (media / "link.mp4").symlink_to(tmp_path / "outside.mp4")
    security = {"media_dir": str(media), "allowed_networks": ["10.0.0.0/8"]}
    settings = make_settings(tmp_path / "data", [], security=security)
    async with serve(settings) as srv:
        c = srv.client
        refused = {
            "concat:/etc/passwd|/etc/hosts": "unsupported scheme",
            "subfile,,start,0,end,100,,:/etc/passwd": "unsupported scheme",
            "ftp://127.0.0.1/cam.mp4": "unsupported scheme",
            "hls+http://127.0.0.1/x.m3u8": "unsupported scheme",
            "data:video/mp4;base64,AAAA": "unsupported scheme",
            "relative/clip.mp4": "unsupported scheme",
            str(tmp_path / "outside.mp4"): "outside security.media_dir",
            f"{media}/../outside.mp4": "outside security.media_dir",
            str(media / "link.mp4"): "outside security.media_dir",
            f"file://{tmp_path}/outside.mp4": "outside security.media_dir",
        }
        for i, (url, why) in enumerate(refused.items()):
            r = await c.post("/api/cameras", json={"id": f"r{i}", "url": url})
            assert r.status_code == 422, (url, r.text)
            (err,) = r.json()["detail"]
            assert err["loc"] == ["body", "url"], (url, err)
            assert why in err["msg"], (url, err)
            # The same through PATCH of a camera that exists.
        r = await c.post("/api/cameras", json={"id": "f", "url": str(media / "clip.mp4")})
        assert r.status_code == 201
        r = await c.patch("/api/cameras/f", json={"url": str(tmp_path / "outside.mp4")})
        assert r.status_code == 422
        assert "outside security.media_dir" in r.json()["detail"][0]["msg"]
        assert (await c.get("/api/cameras")).json()["cameras"][0]["url"] == str(media / "clip.mp4")
        # allowed_networks: a loopback camera is outside 10.0.0.0/8 and never contacted.
        busy = {"id": "net", "url": sim_cameras.mjpeg_url_for("busy")}
        r = await c.post("/api/cameras", json=busy)
        assert r.status_code == 201
        cam = await srv.wait_camera("net", lambda c: c["status"] == "offline", 10, "refused")
        assert cam["last_error"] == (
            "127.0.0.1 resolves to 127.0.0.1, outside security.allowed_networks"
        )
    # Inside the allow-list the same camera works.
    loopback = {"allowed_networks": ["127.0.0.0/8"]}
    async with serve(make_settings(tmp_path / "data2", [], security=loopback)) as srv:
        r = await srv.client.post("/api/cameras", json=busy)
        assert r.status_code == 201
        await srv.wait_camera("net", lambda c: c["status"] == "online", 20, "online")


async def test_camera_url_with_control_characters_is_refused(tmp_path: Path) -> None:
    # FFmpeg would write a line break into the RTSP request as it is: extra headers, or a
    # second request, sent to the camera's host.
    injected = "rtsp://u:s3cret@127.0.0.1:9/x\r\nX-Injected: 1\r\n\r\nOPTIONS rtsp://evil/ RTSP/1.0"
    async with serve(make_settings(tmp_path / "data", [])) as srv:
        c = srv.client
        for url in (injected, "http://u:s3cret@127.0.0.1:9/a\0b", "rtsp://127.0.0.1:9/a\x7fb"):
            r = await c.post("/api/cameras", json={"id": "inj", "url": url})
            assert r.status_code == 422, (url, r.text)
            (err,) = r.json()["detail"]
            assert err["loc"] == ["body", "url"], err
            assert "control character" in err["msg"], err
            assert "s3cret" not in r.text
        # Around the URL, a line break pasted with it is dropped.
        r = await c.post("/api/cameras", json={"id": "ok", "url": " rtsp://127.0.0.1:9/x\r\n"})
        assert r.status_code == 201
        assert r.json()["url"] == "rtsp://127.0.0.1:9/x"
        r = await c.patch("/api/cameras/ok", json={"detect_url": injected})
        assert r.status_code == 422
        assert r.json()["detail"][0]["loc"] == ["body", "detect_url"]
        cameras = (await c.get("/api/cameras")).json()["cameras"]
        assert [(cam["id"], cam["detect_url"]) for cam in cameras] == [("ok", None)]


def test_ffmpeg_is_fenced_per_source_kind() -> None:
    # Network kinds may not touch files or meta-protocols; files may touch nothing else.
    for kind, allowed in PROTOCOL_WHITELIST.items():
        protocols = set(allowed.split(","))
        assert not protocols & {"concat", "subfile", "hls", "data", "pipe", "crypto", "async"}
        if kind in ("rtsp", "mjpeg", "snapshot"):
            assert "file" not in protocols, kind
        else:
            assert protocols == {"file"}, kind
    formats = set(FILE_FORMATS.split(","))
    assert not formats & {"hls", "concat", "dash", "image2", "ffmetadata", "tee"}
