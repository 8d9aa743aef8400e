"""``motionhub watch`` against a real server: wrong URLs end in one clear line."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from websockets.asyncio.server import ServerConnection, serve
from ws_harness import uvicorn_on_free_port

from clients.watch import format_message
from server.app import create_app
from server.config import Settings


async def run_watch(url: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from server.cli import main; main()", "watch",
        "--url", url, "--count", "1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, (out + err).decode()


async def test_watch_exits_with_one_line_on_a_url_that_is_not_the_feed(tmp_path: Path) -> None:
    app = create_app(Settings(storage={"path": str(tmp_path)}, cameras=[]))
    async with uvicorn_on_free_port(app) as (port, _server):
        code, text = await run_watch(f"ws://bob:s3cr3t@127.0.0.1:{port}/not-the-feed")
        assert code == 1, text
        assert "Traceback" not in text
        assert "refused the WebSocket connection (HTTP 403)" in text
        assert "s3cr3t" not in text
        code, text = await run_watch(f"http://127.0.0.1:{port}/ws")
        assert code == 2, text
        assert "Traceback" not in text
        assert "expected ws://host:port/ws" in text.splitlines()[-1]


async def test_watch_skips_frames_it_cannot_read_and_goes_on() -> None:
    # Not motionhub: another WebSocket service (or a proxy) at the URL, sending what motionhub
    # never sends, then one message watch can print.
    async def handler(ws: ServerConnection) -> None:
        for frame in ("not json", "[1, 2]", '{"type": "event_start", "event": null}',
                      '{"type": "camera_status", "camera": "x"}'):  # fmt: skip
            await ws.send(frame)
        await ws.send(json.dumps({"type": "error", "message": "still here"}))
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        code, text = await run_watch(f"ws://127.0.0.1:{port}/ws")
    assert code == 0, text
    assert "Traceback" not in text
    assert "server error: still here" in text
    assert text.count("skipped") == 4, text


def test_watch_shows_an_event_deleted_through_the_api() -> None:
    line = format_message(
        {"type": "event_deleted", "id": "01JABCDEFGHJKMNPQRSTVWXYZ0", "camera": "gate"}
    )
    assert line is not None
    assert line.endswith("gate         event DELETED 01JABCDEFGHJKMNPQRSTVWXYZ0")
