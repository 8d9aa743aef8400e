"""Event messages from the outbox to the broker, in order, on one connection.

:class:`EventSender` publishes the outbox's messages in sequence order with up to a window
of them awaiting their PUBACK, starting from the oldest unacknowledged one on every new
connection. A message put while the sender is caught up and has room in its window is
started by :meth:`EventSender.offer`, called from the hub callback that queued it, instead
of waiting for the sending task to be woken first: on a loaded event loop that saves a turn
behind everything else that was ready, such as the WebSocket write pass of the same burst.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import aiomqtt

from server.mqtt.outbox import Outbox, OutboxMessage

__all__ = ["EventSender"]


class EventSender:
    """Publishes ``outbox`` on ``client`` until the connection ends; one per connection."""

    def __init__(
        self, outbox: Outbox, client: aiomqtt.Client, window: int, on_sent: Callable[[], None]
    ) -> None:
        self._outbox = outbox
        self._client = client
        self._window = window
        self._on_sent = on_sent
        self._cursor = 0
        """The lowest sequence number not yet started on this connection."""
        self._inflight = 0
        self._room = asyncio.Event()
        self._tg: asyncio.TaskGroup | None = None

    @property
    def inflight(self) -> int:
        """Messages published on this connection and not yet acknowledged."""
        return self._inflight

    async def run(self) -> None:
        """Publish until cancelled; a failed publish ends it with that exception."""
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            try:
                while True:
                    msg = await self._outbox.wait_for(self._cursor)
                    if msg.seq < self._cursor:
                        continue  # offer() started it while this task waited
                    if self._inflight >= self._window:
                        self._room.clear()
                        await self._room.wait()
                        continue
                    self._start(msg)
            finally:
                self._tg = None

    def offer(self, msg: OutboxMessage) -> None:
        """Start ``msg``, just put in the outbox, now if it is next in line and the window
        has room; otherwise :meth:`run` takes it in turn. Never waits."""
        if self._inflight >= self._window or self._outbox.first_from(self._cursor) is not msg:
            return
        with contextlib.suppress(RuntimeError):  # the connection is ending: the next one sends it
            self._start(msg)

    def _start(self, msg: OutboxMessage) -> None:
        if self._tg is None:
            raise RuntimeError("the sender is not running")
        publish = self._publish(msg)
        try:
            self._tg.create_task(publish)
        except RuntimeError:  # the task group is shutting down
            publish.close()
            raise
        self._cursor = msg.seq + 1
        self._inflight += 1

    async def _publish(self, msg: OutboxMessage) -> None:
        try:
            await self._client.publish(msg.topic, msg.payload, qos=msg.qos)
            self._outbox.ack(msg.seq)
            self._on_sent()
        finally:
            self._inflight -= 1
            self._room.set()
