"""Property tests: any client input gets a typed message or a clear error, nothing crashes.

First the parser alone, then the same inputs thrown at a live server over one
connection, which must answer each with an ``error`` (or the proper reply) and stay up.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from loop_thread import LoopThread
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect
from ws_harness import ADMIN_TOKEN, VIEWER_TOKEN, LiveServer, live_server, make_event

from server.messages import (
    RESUME_SINCE_PATTERN,
    AuthMessage,
    ErrorMessage,
    ResumeMessage,
    SubscribeMessage,
    client_message_adapter,
)
from server.ws import parse_client_message

ERROR_CODES = {"invalid_json", "invalid_message", "too_large", "unsupported"}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
camera_ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=12)
valid_messages = st.one_of(
    st.builds(AuthMessage, type=st.just("auth"), token=st.text(max_size=64)),
    st.builds(
        SubscribeMessage,
        type=st.just("subscribe"),
        cameras=st.none() | st.lists(camera_ids, max_size=8),
    ),
    st.builds(
        ResumeMessage,
        type=st.just("resume"),
        since=st.from_regex(RESUME_SINCE_PATTERN, fullmatch=True),
    ),
)
# Objects shaped like client messages, with the right or wrong fields and types.
near_misses = st.fixed_dictionaries(
    {"type": st.sampled_from(["auth", "subscribe", "resume", "hello", "", "AUTH"])},
    optional={
        "token": json_values,
        "cameras": json_values,
        "since": json_values,
        "extra": json_values,
    },
).map(json.dumps)
frames = st.one_of(
    st.text(max_size=200),
    st.binary(max_size=64),
    json_values.map(json.dumps),
    near_misses,
    valid_messages.map(lambda m: m.model_dump_json()),
    st.integers(16_000, 20_000).map(lambda n: '{"type": "resume", "since": "' + "x" * n + '"}'),
)


@settings(max_examples=400)
@given(frames)
def test_parser_never_raises_and_errors_are_clear(frame: str | bytes) -> None:
    parsed = parse_client_message(frame)
    if isinstance(parsed, ErrorMessage):
        assert parsed.code in ERROR_CODES
        assert 0 < len(parsed.message) <= 300
    else:
        # Whatever was accepted is exactly what a strict parse of the frame gives.
        assert parsed == client_message_adapter.validate_json(frame)


@given(valid_messages)
def test_valid_messages_round_trip(message: AuthMessage | SubscribeMessage | ResumeMessage) -> None:
    assert parse_client_message(message.model_dump_json()) == message


@contextlib.asynccontextmanager
async def _server_with_events() -> AsyncIterator[LiveServer]:
    async with live_server(["cam1", "cam2"]) as server:
        server.services.events = [make_event(n, "cam1") for n in range(1, 4)]
        yield server


@pytest.fixture(scope="module")
def threaded_server() -> Iterator[LiveServer]:
    """The live harness on its own event loop in a thread, for synchronous clients."""
    with LoopThread(_server_with_events, name="ws-server", timeout=20) as held:
        assert held.value is not None
        yield held.value


def open_client(server: LiveServer, stack: contextlib.ExitStack) -> ClientConnection:
    protocols: Any = ["motionhub", f"bearer.{VIEWER_TOKEN}"]
    ws = stack.enter_context(connect(server.url, subprotocols=protocols))
    assert json.loads(ws.recv(timeout=5))["type"] == "hello"
    return ws


def read_until_closed(ws: ClientConnection) -> ConnectionClosed:
    try:
        while True:
            ws.recv(timeout=5)
    except ConnectionClosed as exc:
        return exc


_sentinels = itertools.count()


def replies_until_sentinel(ws: ClientConnection) -> list[dict[str, Any]]:
    """Send a unique sentinel subscribe and collect every reply before its acknowledgement."""
    cameras = ["cam1", "cam2", f"~{next(_sentinels)}"]
    ws.send(json.dumps({"type": "subscribe", "cameras": cameras}))
    out = []
    while True:
        msg = json.loads(ws.recv(timeout=5))
        if msg == {"type": "subscribed", "cameras": sorted(cameras)}:
            return out
        out.append(msg)


@pytest.mark.slow
def test_live_server_answers_any_input_and_stays_up(threaded_server: LiveServer) -> None:
    state: dict[str, ClientConnection] = {}
    stack = contextlib.ExitStack()

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(frames)
    def check(frame: str | bytes) -> None:
        ws = state.get("ws") or open_client(threaded_server, stack)
        state["ws"] = ws
        parsed = parse_client_message(frame)
        ws.send(frame)
        if isinstance(parsed, AuthMessage) and parsed.token not in (ADMIN_TOKEN, VIEWER_TOKEN):
            # A wrong token ends the session with 1008, and only that.
            closed = read_until_closed(ws)
            assert closed.rcvd is not None
            assert closed.rcvd.code == 1008
            state.pop("ws")
            return
        replies = replies_until_sentinel(ws)
        if isinstance(parsed, ErrorMessage):
            assert replies == [parsed.model_dump(mode="json")]
        elif isinstance(parsed, SubscribeMessage):
            cameras = None if parsed.cameras is None else sorted(set(parsed.cameras))
            assert replies == [{"type": "subscribed", "cameras": cameras}]
        elif isinstance(parsed, ResumeMessage):
            assert replies[-1]["type"] == "resumed"
            assert [m["event"]["id"] for m in replies[:-1]] == [
                e.id for e in threaded_server.services.events if e.id > parsed.since
            ]
        else:
            assert replies == []

    with stack:
        check()
    # The server (on its own thread) lets go of the last client once it sees it leave.
    deadline = time.monotonic() + 5
    while threaded_server.api.fanout.client_count and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threaded_server.api.fanout.client_count == 0
