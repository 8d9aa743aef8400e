"""The fan-out's queueing rules, driven through a real Hub into in-memory client sinks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

from ws_harness import make_event

from server.bus import Hub
from server.messages import (
    CameraStatusMessage,
    EventEndMessage,
    EventStartMessage,
    EventUpdateMessage,
    MotionMessage,
    StatsMessage,
)
from server.ws import CloseRequest, FanOut, FanOutLimits
from server.ws.fanout import Outgoing


class Sink:
    """A client socket stand-in: records what is sent; can be told to stall."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.open = asyncio.Event()
        self.open.set()

    async def send(self, message: dict[str, Any]) -> None:
        await self.open.wait()
        self.received.append(json.loads(message["text"]))

    def kinds(self) -> list[tuple[str, Any]]:
        out = []
        for m in self.received:
            key = m.get("camera") or m.get("event", {}).get("id")
            out.append((m["type"], key))
        return out


def motion(camera: str, score: float, moving: bool = True) -> MotionMessage:
    return MotionMessage(camera=camera, ts=score, motion=moving, score=score)


def unlimited_fanout() -> tuple[Hub, FanOut]:
    """A hub with a fan-out subscribed that rate-limits no motion message."""
    hub = Hub()
    fanout = FanOut(hub, FanOutLimits(motion_interval=0, motion_budget=1e9))
    hub.subscribe("ws", fanout.publish)
    return hub, fanout


async def drain() -> None:
    """Let every runnable task run to its next real wait."""
    for _ in range(30):
        await asyncio.sleep(0)


async def test_stale_state_is_replaced_and_events_go_first_in_order() -> None:
    hub, fanout = unlimited_fanout()
    sink = Sink()
    sink.open.clear()
    client = fanout.register("c", sink.send)
    assert client is not None
    writer = asyncio.create_task(client.run())
    hub.publish(motion("cam1", 0.1))
    await drain()
    # The writer is now stuck sending that first message; queue up behind it.
    hub.publish(motion("cam1", 0.2))
    hub.publish(EventStartMessage(event=make_event(1, "cam1", ended=False)))
    hub.publish(motion("cam2", 0.3))
    hub.publish(motion("cam1", 0.4))
    hub.publish(CameraStatusMessage(camera="cam2", status="offline"))
    hub.publish(CameraStatusMessage(camera="cam2", status="online"))
    hub.publish(EventEndMessage(event=make_event(1, "cam1")))
    hub.publish(motion("cam2", 0.5))
    assert client.unsent_events == 2
    assert len(client) == 5
    sink.open.set()
    await drain()
    assert sink.kinds() == [
        ("motion", "cam1"),  # the one in flight when the socket stalled
        ("event_start", make_event(1, "cam1").id),
        ("event_end", make_event(1, "cam1").id),
        ("motion", "cam1"),
        ("camera_status", "cam2"),
        ("motion", "cam2"),
    ]
    assert [m["score"] for m in sink.received if m["type"] == "motion"] == [0.1, 0.4, 0.5]
    assert sink.received[4]["status"] == "online"
    assert client.unsent_events == 0
    assert client.backlog_since is None
    writer.cancel()


async def test_busy_writers_take_turns() -> None:
    # Two clients, each with a backlog: each sends one message, then lets the other go.
    hub = Hub()
    fanout = FanOut(hub)
    hub.subscribe("ws", fanout.publish)
    order: list[str] = []

    def sender(name: str) -> Any:
        async def send(message: dict[str, Any]) -> None:
            order.append(f"{name}:{json.loads(message['text'])['event']['id'][-1]}")

        return send

    clients = [fanout.register(n, sender(n)) for n in ("a", "b")]
    for n in range(3):
        hub.publish(EventStartMessage(event=make_event(n, "cam1", ended=False)))
    tasks = [asyncio.create_task(c.run()) for c in clients if c is not None]
    await drain()
    assert order == ["a:0", "b:0", "a:1", "b:1", "a:2", "b:2"]
    for t in tasks:
        t.cancel()


async def test_filter_applies_to_new_and_queued_messages() -> None:
    hub, fanout = unlimited_fanout()
    sink = Sink()
    client = fanout.register("c", sink.send, frozenset({"cam1"}))
    assert client is not None
    hub.publish(motion("cam1", 0.1))
    hub.publish(motion("cam2", 0.2))
    hub.publish(EventStartMessage(event=make_event(2, "cam2", ended=False)))
    hub.publish(StatsMessage(uptime=1, cameras_online=2, cameras_total=2, clients=1,
                             events_total=0))  # fmt: skip
    client.refilter(frozenset({"cam3"}))
    hub.publish(motion("cam3", 0.3))
    writer = asyncio.create_task(client.run())
    await drain()
    assert sink.kinds() == [("stats", None), ("motion", "cam3")]
    writer.cancel()


async def test_overflow_finishes_the_client_with_1013() -> None:
    hub = Hub()
    fanout = FanOut(hub, FanOutLimits(queue_size=3))
    hub.subscribe("ws", fanout.publish)
    client = fanout.register("c", Sink().send)
    assert client is not None
    for n in range(3):
        hub.publish(EventStartMessage(event=make_event(n, "cam1", ended=False)))
    assert not client.finished.done()
    hub.publish(EventStartMessage(event=make_event(9, "cam1", ended=False)))
    assert client.finished.result() == CloseRequest(
        1013, "client too slow: too many unsent messages"
    )
    assert fanout.client_count == 0
    assert len(client) == 0, "the backlog is released at once"


async def test_sweep_closes_only_clients_behind_for_too_long() -> None:
    hub = Hub()
    fanout = FanOut(hub, FanOutLimits(slow_client_timeout=0.05))
    hub.subscribe("ws", fanout.publish)
    slow_sink, quick_sink = Sink(), Sink()
    slow_sink.open.clear()
    slow = fanout.register("slow", slow_sink.send)
    quick = fanout.register("quick", quick_sink.send)
    assert slow is not None
    assert quick is not None
    tasks = [asyncio.create_task(c.run()) for c in (slow, quick)]
    for n in range(3):
        hub.publish(EventStartMessage(event=make_event(n, "cam1", ended=False)))
        await asyncio.sleep(0.03)
        fanout.sweep()
    assert slow.finished.done()
    assert slow.finished.result().code == 1013
    assert not quick.finished.done()
    assert len(quick_sink.received) == 3
    assert fanout.client_count == 1
    for t in tasks:
        t.cancel()


async def test_motion_rate_limit_passes_state_changes_at_once() -> None:
    hub = Hub()
    fanout = FanOut(hub, FanOutLimits(motion_interval=10, idle_motion_interval=10))
    hub.subscribe("ws", fanout.publish)
    sink = Sink()
    client = fanout.register("c", sink.send)
    assert client is not None
    writer = asyncio.create_task(client.run())
    hub.publish(motion("cam1", 0.1))
    await drain()
    hub.publish(motion("cam1", 0.2))  # same state, too soon: held back
    await drain()
    hub.publish(motion("cam1", 0.0, moving=False))  # state change: sent
    await drain()
    hub.publish(motion("cam2", 0.3))  # another camera has its own budget
    await drain()
    assert [(m["camera"], m["score"]) for m in sink.received] == [
        ("cam1", 0.1),
        ("cam1", 0.0),
        ("cam2", 0.3),
    ]
    assert fanout.rate_limited == 1
    writer.cancel()


async def test_motion_budget_spaces_repeats_out_with_many_clients() -> None:
    hub = Hub()
    fanout = FanOut(hub, FanOutLimits(motion_interval=0, motion_budget=100))
    hub.subscribe("ws", fanout.publish)
    hub.publish(motion("cam1", 0.1))
    hub.publish(motion("cam1", 0.2))  # one client-less repeat costs nothing: passes
    for n in range(100):
        assert fanout.register(f"c{n}", Sink().send) is not None
    hub.publish(motion("cam1", 0.3))  # 100 clients x 1 camera / 100 per s: 1 s apart
    hub.publish(motion("cam1", 0.0, moving=False))  # a change always passes
    assert fanout.rate_limited == 1
    assert fanout.published == 3


async def test_direct_replies_go_first_and_a_failing_socket_ends_the_session() -> None:
    hub = Hub()
    fanout = FanOut(hub, FanOutLimits(direct_size=2))
    hub.subscribe("ws", fanout.publish)
    sent: list[str] = []

    async def send(message: dict[str, Any]) -> None:
        if len(sent) == 3:
            raise OSError("connection reset")
        sent.append(message["text"])

    client = fanout.register("c", send)
    assert client is not None
    hub.publish(motion("cam1", 0.1))
    assert client.push_direct('{"type": "a"}')
    assert client.push_direct('{"type": "b"}')
    assert not client.push_direct('{"type": "c"}')
    assert client.push_direct('{"type": "error"}', droppable=True)
    hub.publish(motion("cam1", 0.2, moving=False))
    hub.publish(EventStartMessage(event=make_event(1, "cam1", ended=False)))
    await asyncio.wait_for(client.run(), 5)
    assert [json.loads(s)["type"] for s in sent] == ["a", "b", "event_start"]
    assert client.finished.result() == CloseRequest(None)


async def test_run_subscribes_and_closes_everyone_on_shutdown() -> None:
    hub = Hub()
    fanout = FanOut(hub)
    client = fanout.register("c", Sink().send)
    assert client is not None
    task = asyncio.create_task(fanout.run())
    await drain()
    assert hub.subscriber_names == ["websocket"]
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert hub.subscriber_names == []
    assert client.finished.result().code == 1001


class SyncSink(Sink):
    """A socket the server can write to without waiting, until it is "full"."""

    def __init__(self, order: list[SyncSink] | None = None) -> None:
        super().__init__()
        self.full = False
        self.now = 0
        """Messages written through ``send_now``."""
        self.writes: list[list[str]] = []
        """The message types of each ``send_now`` call, one write each."""
        self.order: list[SyncSink] = order if order is not None else []

    def send_now(self, messages: Sequence[Outgoing]) -> bool:
        if self.full:
            return False
        self.now += len(messages)
        decoded = [json.loads(m.utf8) for m in messages]
        self.received.extend(decoded)
        self.writes.append([m["type"] for m in decoded])
        self.order.append(self)
        return True


async def test_writable_clients_are_sent_in_one_pass_without_their_writer() -> None:
    hub, fanout = unlimited_fanout()
    sinks = [SyncSink() for _ in range(3)]
    for i, sink in enumerate(sinks):
        assert fanout.register(f"c{i}", sink.send, send_now=sink.send_now) is not None
    # No writer task runs: everything must go through the synchronous path.
    hub.publish(EventStartMessage(event=make_event(1, "cam1", ended=False)))
    hub.publish(motion("cam1", 0.1))
    hub.publish(EventEndMessage(event=make_event(1, "cam1")))
    assert all(s.received == [] for s in sinks)  # publishing only queues
    await asyncio.sleep(0)  # the one flush pass
    for sink in sinks:
        assert sink.kinds() == [
            ("event_start", make_event(1, "cam1").id),
            ("event_end", make_event(1, "cam1").id),  # events first, then the state
            ("motion", "cam1"),
        ]
        assert sink.writes == [["event_start", "event_end", "motion"]]  # in one write
    assert all(c.sent == 3 and len(c) == 0 and c.backlog_since is None for c in fanout.clients)


async def test_a_pass_is_written_in_chunks_and_a_message_published_meanwhile_rides_along() -> None:
    hub = Hub()
    fanout = FanOut(hub, FanOutLimits(motion_interval=0, motion_budget=1e9, flush_chunk=2))
    hub.subscribe("ws", fanout.publish)
    order: list[SyncSink] = []
    sinks = [SyncSink(order) for _ in range(5)]
    for i, sink in enumerate(sinks):
        assert fanout.register(f"c{i}", sink.send, send_now=sink.send_now) is not None
    hub.publish(EventStartMessage(event=make_event(1, "cam1", ended=False)))
    await asyncio.sleep(0)  # one callback: the first chunk of the pass
    assert [s.writes for s in sinks] == [[["event_start"]]] * 2 + [[]] * 3
    # Published between two chunks (as a frame's results are handed over): the clients not
    # reached yet get it in the same write, the ones already served after them.
    hub.publish(EventEndMessage(event=make_event(1, "cam1")))
    await drain()
    assert [s.writes for s in sinks] == [[["event_start"], ["event_end"]]] * 2 + [
        [["event_start", "event_end"]]
    ] * 3
    assert order == sinks + sinks[:2]
    assert all(len(c) == 0 and c.backlog_since is None for c in fanout.clients)


async def test_a_full_socket_hands_over_to_the_writer_and_loses_no_event() -> None:
    hub, fanout = unlimited_fanout()
    sink = SyncSink()
    client = fanout.register("c", sink.send, send_now=sink.send_now)
    assert client is not None
    writer = asyncio.create_task(client.run())
    await drain()
    hub.publish(EventStartMessage(event=make_event(1, "cam1", ended=False)))
    await drain()
    sink.full = True
    sink.open.clear()  # and the ASGI send waits, like uvicorn's for a paused transport
    for i in range(20):
        hub.publish(motion("cam1", i / 100))
        hub.publish(EventUpdateMessage(event=make_event(1, "cam1", ended=False)))
    hub.publish(EventEndMessage(event=make_event(1, "cam1")))
    await drain()
    assert client.unsent_events > 0
    sink.full = False
    sink.open.set()
    await drain()
    kinds = [k for k, _ in sink.kinds()]
    assert kinds.count("event_update") == 20
    assert kinds[0] == "event_start"
    assert kinds.index("event_end") > max(i for i, k in enumerate(kinds) if k == "event_update")
    assert len(client) == 0
    # Back to the synchronous path once the socket takes frames again.
    before = sink.now
    hub.publish(EventStartMessage(event=make_event(2, "cam1", ended=False)))
    await drain()
    assert sink.now == before + 1
    writer.cancel()


async def test_motion_rate_limit_never_holds_back_an_event() -> None:
    # Thousands of clients squeeze the motion budget to a trickle; events all still go out.
    hub = Hub()
    fanout = FanOut(hub, FanOutLimits(motion_budget=100))
    hub.subscribe("ws", fanout.publish)
    sinks = [SyncSink() for _ in range(2000)]
    for i, sink in enumerate(sinks):
        fanout.register(f"c{i}", sink.send, send_now=sink.send_now)
    for n in range(10):
        for _ in range(5):
            hub.publish(motion("cam1", 0.5))  # repeats of one state: rate limited
        hub.publish(EventStartMessage(event=make_event(n, "cam1", ended=False)))
        hub.publish(EventEndMessage(event=make_event(n, "cam1")))
        await asyncio.sleep(0)
    for _ in range(1000):  # the passes over 2,000 clients, a chunk per callback
        if not any(len(c) for c in fanout.clients):
            break
        await asyncio.sleep(0)
    assert fanout.rate_limited > 0
    for sink in sinks:
        kinds = [k for k, _ in sink.kinds()]
        assert kinds.count("event_start") == 10
        assert kinds.count("event_end") == 10


async def test_a_flush_pass_writes_each_client_once_with_its_event_then_its_motion() -> None:
    hub, fanout = unlimited_fanout()
    order: list[SyncSink] = []
    sinks = [SyncSink(order) for _ in range(3)]
    for i, sink in enumerate(sinks):
        fanout.register(f"c{i}", sink.send, send_now=sink.send_now)
    hub.publish(motion("cam1", 0.9))
    hub.publish(EventStartMessage(event=make_event(1, "cam1", ended=False)))
    await asyncio.sleep(0)
    # One write per client, each with the event first: the last client's event waits for
    # one write per client before it, not two.
    assert order == sinks
    assert all(s.writes == [["event_start", "motion"]] for s in sinks)


async def test_a_long_backlog_is_written_in_bounded_batches_in_order() -> None:
    hub, fanout = unlimited_fanout()
    sink = SyncSink()
    client = fanout.register("c", sink.send, send_now=sink.send_now)
    assert client is not None
    for n in range(40):
        assert client.push_direct(json.dumps({"type": "replayed", "n": n}))
    hub.publish(EventStartMessage(event=make_event(1, "cam1", ended=False)))
    hub.publish(motion("cam1", 0.3))
    await drain()
    limit = client.PASS_LIMIT
    assert [len(w) for w in sink.writes] == [limit, limit, 40 - 2 * limit + 2]
    assert [m.get("n") for m in sink.received[:40]] == list(range(40))
    assert [k for k, _ in sink.kinds()[40:]] == ["event_start", "motion"]
    assert len(client) == 0
    assert client.backlog_since is None
