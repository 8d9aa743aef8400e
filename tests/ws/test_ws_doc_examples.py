"""The replies shown in docs/websocket.md are what a real server sends for the input they
stand for."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect
from ws_harness import VIEWER_TOKEN, live_server, recv_json, recv_until

DOC = Path(__file__).resolve().parents[2] / "docs" / "websocket.md"


def documented_replies() -> list[dict[str, Any]]:
    """The JSON lines of the example under "Replies to one client"."""
    section = DOC.read_text(encoding="utf-8").split("### Replies to one client", 1)[1]
    block = re.search(r"```json\n(.*?)```", section, re.S)
    assert block is not None, "no example under Replies to one client"
    return [json.loads(line) for line in block.group(1).splitlines() if line.strip()]


async def test_the_documented_error_reply_is_the_one_sent() -> None:
    (error,) = [r for r in documented_replies() if r["type"] == "error"]
    assert error["code"] == "invalid_message"
    async with (
        live_server() as server,
        connect(server.url, subprotocols=["motionhub", f"bearer.{VIEWER_TOKEN}"]) as ws,
    ):
        assert (await recv_json(ws))["type"] == "hello"
        # cameras must be a list of ids (or null): one id on its own is the mistake shown.
        await ws.send(json.dumps({"type": "subscribe", "cameras": "driveway"}))
        assert (await recv_until(ws, "error"))[-1] == error
