"""``motionhub watch`` against a real server: wrong URLs end in one clear line."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from ws_harness import uvicorn_on_free_port

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
