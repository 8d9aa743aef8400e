"""Fan-out from the hub to every WebSocket client, through per-client bounded queues.

One hub callback (:meth:`FanOut.publish`) serialises each message to JSON once and
offers the same string to every interested client. Each client owns a
:class:`ClientQueue` drained by its own writer task, so a client that stops reading
only ever stalls its own task:

* ``motion``, ``camera_status`` and ``stats`` are state, not history: a newer one
  replaces the unsent older one of the same camera (moving to the back, so order with
  respect to events is kept).
* Event messages are never dropped for a live client. A client with more than
  ``queue_size`` of them unsent, or with anything unsent for ``slow_client_timeout``
  seconds, is no longer live: it is closed with 1013 (try again later) and resumes
  from storage when it reconnects.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Final

from server.bus import Hub
from server.messages import (
    CameraRemoved,
    CameraStatusMessage,
    EventEndMessage,
    EventStartMessage,
    EventUpdateMessage,
    HelloMessage,
    MotionMessage,
    ServerMessage,
    StatsMessage,
)

__all__ = [
    "CLOSE_GOING_AWAY",
    "CLOSE_POLICY",
    "CLOSE_TRY_AGAIN",
    "ClientQueue",
    "CloseRequest",
    "FanOut",
    "FanOutLimits",
]

log = logging.getLogger(__name__)

CLOSE_GOING_AWAY: Final = 1001
CLOSE_POLICY: Final = 1008
CLOSE_TRY_AGAIN: Final = 1013

SendText = Callable[[str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class FanOutLimits:
    """Backpressure and rate limits (see ``server.websocket`` in the configuration)."""

    queue_size: int = 256
    slow_client_timeout: float = 10.0
    max_clients: int = 5000
    motion_interval: float = 0.1
    idle_motion_interval: float = 0.5
    direct_size: int = 1100
    """Replies to one client (errors, acknowledgements, a replay) that may be unsent."""


@dataclass(frozen=True, slots=True)
class CloseRequest:
    """Why a client's session ends: a WebSocket close code and reason, or ``None`` when the
    peer already went away and there is nothing left to send."""

    code: int | None
    reason: str = ""


_PEER_GONE = CloseRequest(None)


class ClientQueue:
    """One client's outbox and the writer that drains it.

    ``offer`` and ``push_direct`` never wait; only :meth:`run` awaits the socket.
    Direct replies go before broadcast messages so that, e.g., a replay precedes the
    live events queued while storage was read.
    """

    __slots__ = (
        "_direct",
        "_direct_size",
        "_events",
        "_pending",
        "_send",
        "_wake",
        "backlog_since",
        "cameras",
        "finished",
        "name",
        "sent",
    )

    def __init__(
        self, name: str, send: SendText, cameras: frozenset[str] | None, direct_size: int
    ) -> None:
        self.name = name
        self.cameras = cameras
        """Cameras this client wants; ``None`` means all."""
        self._send = send
        self._pending: OrderedDict[Hashable, tuple[str | None, str]] = OrderedDict()
        self._direct: deque[str] = deque()
        self._direct_size = direct_size
        self._events = 0
        self._wake = asyncio.Event()
        self.backlog_since: float | None = None
        """Monotonic time since which this client has had unsent messages."""
        self.sent = 0
        self.finished: asyncio.Future[CloseRequest] = asyncio.get_running_loop().create_future()
        """Resolves once with why the session ends; the endpoint closes the socket."""

    def __repr__(self) -> str:
        return f"<ClientQueue {self.name} unsent={len(self)}>"

    def __len__(self) -> int:
        return len(self._pending) + len(self._direct)

    @property
    def unsent_events(self) -> int:
        """Event messages waiting to be sent (the bounded part of the queue)."""
        return self._events

    def wants(self, camera: str | None) -> bool:
        """Whether a message about ``camera`` (``None``: not about one camera) passes the filter."""
        return camera is None or self.cameras is None or camera in self.cameras

    def offer(self, key: Hashable, camera: str | None, data: str, now: float, limit: int) -> bool:
        """Queue a broadcast message. ``key`` is unique for events and ``(kind, camera)`` for
        state that a newer message replaces. Returns ``False`` when the event limit is hit."""
        if self.finished.done():
            return True
        pending = self._pending
        if not pending and not self._direct:
            self.backlog_since = now
        if isinstance(key, int):
            if self._events >= limit:
                return False
            self._events += 1
            pending[key] = (camera, data)
        else:
            pending[key] = (camera, data)
            pending.move_to_end(key)
        self._wake.set()
        return True

    def push_direct(self, data: str, *, droppable: bool = False) -> bool:
        """Queue a reply to this client only. A ``droppable`` one (an error report) is
        discarded when the direct queue is full; otherwise ``False`` says it is full."""
        if self.finished.done():
            return True
        if len(self._direct) >= self._direct_size:
            return droppable
        if not self._pending and not self._direct:
            self.backlog_since = time.monotonic()
        self._direct.append(data)
        self._wake.set()
        return True

    def refilter(self, cameras: frozenset[str] | None) -> None:
        """Apply a new camera filter, also to what is already queued."""
        self.cameras = cameras
        if cameras is None:
            return
        for key, (camera, _) in list(self._pending.items()):
            if camera is not None and camera not in cameras:
                del self._pending[key]
                if isinstance(key, int):
                    self._events -= 1

    def _pop(self) -> str | None:
        if self._direct:
            data = self._direct.popleft()
        elif self._pending:
            key, (_, data) = self._pending.popitem(last=False)
            if isinstance(key, int):
                self._events -= 1
        else:
            return None
        if not self._direct and not self._pending:
            self.backlog_since = None
        return data

    def finish(self, request: CloseRequest) -> None:
        """End the session (first caller wins) and drop everything unsent."""
        if not self.finished.done():
            self.finished.set_result(request)
        self._pending.clear()
        self._direct.clear()
        self._events = 0
        self.backlog_since = None
        self._wake.set()

    async def run(self) -> None:
        """Send queued messages until the session finishes or the peer goes away."""
        while not self.finished.done():
            data = self._pop()
            if data is None:
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                await self._send(data)
            except Exception as exc:
                # The peer vanished (starlette raises WebSocketDisconnect, uvicorn an
                # OSError): the session is over, nothing can be sent any more.
                log.debug("ws %s: send failed: %r", self.name, exc)
                self.finish(_PEER_GONE)
                return
            self.sent += 1


def _route(message: ServerMessage) -> tuple[str | None, str | None]:
    """(camera, coalescing kind) of a message; kind ``None`` means it is never replaced."""
    if isinstance(message, MotionMessage):
        return message.camera, "motion"
    if isinstance(message, CameraStatusMessage):
        return message.camera, "camera_status"
    if isinstance(message, StatsMessage):
        return None, "stats"
    if isinstance(message, EventStartMessage | EventUpdateMessage | EventEndMessage):
        return message.event.camera, None
    if isinstance(message, CameraRemoved):
        return message.camera, None
    if isinstance(message, HelloMessage):
        return None, None
    raise TypeError(f"unroutable message type {type(message).__name__}")


class _MotionGate:
    """Per-camera rate limit for motion: a change of state passes at once, a repeat of the
    same state at most every ``interval`` (or ``idle_interval`` while there is no motion)."""

    __slots__ = ("_idle", "_interval", "_last")

    def __init__(self, interval: float, idle_interval: float) -> None:
        self._interval = interval
        self._idle = idle_interval
        self._last: dict[str, tuple[float, bool, tuple[tuple[str, bool], ...]]] = {}

    def allow(self, message: MotionMessage, now: float) -> bool:
        state = (message.motion, tuple(sorted(message.zones.items())))
        last = self._last.get(message.camera)
        if last is not None and (last[1], last[2]) == state:
            wait = self._interval if message.motion else self._idle
            if now - last[0] < wait:
                return False
        self._last[message.camera] = (now, state[0], state[1])
        return True

    def forget(self, camera: str) -> None:
        self._last.pop(camera, None)


class FanOut:
    """Delivers hub messages to every connected WebSocket client without ever blocking.

    Run :meth:`run` as one long-lived task: it subscribes to the hub, closes clients
    that fall behind, and on shutdown closes every client with 1001.
    """

    def __init__(
        self,
        hub: Hub,
        limits: FanOutLimits | None = None,
        on_count: Callable[[int], None] | None = None,
    ) -> None:
        self._hub = hub
        self.limits = limits or FanOutLimits()
        self._on_count = on_count
        self._clients: dict[ClientQueue, None] = {}
        self._seq = 0
        self._gate = _MotionGate(self.limits.motion_interval, self.limits.idle_motion_interval)
        self.published = 0
        """Hub messages forwarded to the clients (after the motion rate limit)."""
        self.rate_limited = 0
        """Motion messages held back by the per-camera rate limit."""
        self.closed_slow = 0
        """Clients closed with 1013 because they fell behind."""

    @property
    def client_count(self) -> int:
        """Connected clients (for ``stats`` and metrics)."""
        return len(self._clients)

    @property
    def clients(self) -> Iterable[ClientQueue]:
        """The connected clients' queues, for diagnostics."""
        return tuple(self._clients)

    def register(
        self, name: str, send: SendText, cameras: frozenset[str] | None = None
    ) -> ClientQueue | None:
        """Add a client that will receive every later message, or ``None`` when full."""
        if len(self._clients) >= self.limits.max_clients:
            return None
        client = ClientQueue(name, send, cameras, self.limits.direct_size)
        self._clients[client] = None
        self._count_changed()
        return client

    def unregister(self, client: ClientQueue) -> None:
        """Forget ``client``; safe to call twice."""
        if client in self._clients:
            del self._clients[client]
            self._count_changed()

    def _count_changed(self) -> None:
        if self._on_count is not None:
            self._on_count(len(self._clients))

    def publish(self, message: ServerMessage) -> None:
        """The hub callback: serialise once, offer to each interested client, never wait."""
        now = time.monotonic()
        if isinstance(message, MotionMessage):
            if not self._gate.allow(message, now):
                self.rate_limited += 1
                return
        elif isinstance(message, CameraRemoved):
            self._gate.forget(message.camera)
        camera, kind = _route(message)
        if kind is None:
            self._seq += 1
            key: Hashable = self._seq
        else:
            key = (kind, camera)
        data = message.model_dump_json()
        self.published += 1
        limit = self.limits.queue_size
        overflowed: list[ClientQueue] = []
        for client in self._clients:
            if client.wants(camera) and not client.offer(key, camera, data, now, limit):
                overflowed.append(client)
        for client in overflowed:
            self._close_behind(client, "too many unsent messages")

    def _close_behind(self, client: ClientQueue, why: str) -> None:
        log.info("ws %s: closing slow client (%s)", client.name, why)
        self.closed_slow += 1
        client.finish(CloseRequest(CLOSE_TRY_AGAIN, f"client too slow: {why}"))
        self.unregister(client)

    def sweep(self) -> None:
        """Close every client that has had unsent messages for too long."""
        deadline = time.monotonic() - self.limits.slow_client_timeout
        for client in list(self._clients):
            since = client.backlog_since
            if since is not None and since < deadline:
                self._close_behind(client, f"behind for over {self.limits.slow_client_timeout:g} s")

    async def run(self) -> None:
        """Subscribe to the hub and police slow clients until cancelled."""
        unsubscribe = self._hub.subscribe("websocket", self.publish)
        period = min(1.0, self.limits.slow_client_timeout / 4)
        try:
            while True:
                await asyncio.sleep(period)
                self.sweep()
        finally:
            unsubscribe()
            for client in list(self._clients):
                client.finish(CloseRequest(CLOSE_GOING_AWAY, "server shutting down"))
            self._clients.clear()
            self._count_changed()
