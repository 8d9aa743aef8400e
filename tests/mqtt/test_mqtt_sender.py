"""The event sender on a real broker: in order, exactly once, within its window, and a
message put while it is caught up goes out from the caller without waiting for its task."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import aiomqtt
from broker_harness import Recorder

from server.mqtt.outbox import Outbox
from server.mqtt.sender import EventSender

WINDOW = 4


async def test_offered_messages_start_at_once_in_order_within_the_window(
    mosquitto, mqtt_prefix: str, tmp_path: Path
) -> None:
    topic = f"{mqtt_prefix}/events"
    outbox = Outbox(tmp_path / "outbox.db", 1000)
    await outbox.open()
    sent: list[int] = []
    async with (
        Recorder(mosquitto.url, topic) as rec,
        aiomqtt.Client("127.0.0.1", mosquitto.port, identifier=f"{mqtt_prefix}-sender") as client,
    ):
        sender = EventSender(outbox, client, WINDOW, lambda: sent.append(1))
        task = asyncio.create_task(sender.run())
        await asyncio.sleep(0.05)  # the sender waits for messages
        first = outbox.put(topic, b"0", "m0")
        sender.offer(first)
        assert sender.inflight == 1  # started by offer(), not by the woken task
        for n in range(1, 50):
            sender.offer(outbox.put(topic, str(n).encode(), f"m{n}"))
            assert sender.inflight <= WINDOW
        assert sender.inflight == WINDOW  # the rest wait their turn, in order
        await rec.wait_for(lambda ms: len(ms) >= 50, what="50 events")
        await rec.quiet()
        assert [int(m.payload) for m in rec.messages] == list(range(50))  # once each, in order
        assert await outbox.wait_empty(5.0)
        assert len(sent) == 50
        assert sender.inflight == 0
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await outbox.close()
