"""Fan-out from the hub to every WebSocket client, through per-client bounded queues.

One hub callback (:meth:`FanOut.publish`) serialises each message to JSON once and
offers the same string to every interested client. Each client owns a
:class:`ClientQueue` drained by its own writer task, so a client that stops reading
only ever stalls its own task:

* ``motion``, ``camera_status`` and ``stats`` are state, not history: a newer one
  replaces the unsent older one of the same camera. A client with a backlog gets its
  events first, in order, then the newest state.
* Event messages are never dropped for a live client. A client with more than
  ``queue_size`` of them unsent, or with anything unsent for ``slow_client_timeout``
  seconds, is no longer live: it is closed with 1013 (try again later) and resumes
  from storage when it reconnects.
* Repeats of an unchanged motion state are rate limited per camera, more strictly the
  more clients there are (``motion_budget``), so that a crowd of viewers cannot take
  the event loop away from the cameras.

Sending is the fan-out's main cost: with thousands of clients, each message is thousands of
sends. Each message is encoded to UTF-8 once. When the server offers a synchronous send
(:data:`SendNow`, see :mod:`server.ws.protocol`), a client whose socket can take more
gets what it has queued (direct replies, events, then the newest state) joined into one
socket write, in one pass over all such clients scheduled once per burst of publishes (a
few dozen clients per loop callback, so a message published meanwhile joins the rest of
the pass), instead of waking one writer task per client and message: an event and the
motion that changed with it cost each client one send, not two. The writer task and the
ASGI ``send`` take over only while a socket is full.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any, Final

from websockets.frames import Frame, Opcode

from server.bus import Hub
from server.messages import (
    CameraRemoved,
    CameraStatusMessage,
    EventDeletedMessage,
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
    "SEND_NOW_KEY",
    "ClientQueue",
    "CloseRequest",
    "FanOut",
    "FanOutLimits",
    "Outgoing",
    "Send",
    "SendNow",
]

log = logging.getLogger(__name__)

CLOSE_GOING_AWAY: Final = 1001
CLOSE_POLICY: Final = 1008
CLOSE_TRY_AGAIN: Final = 1013

Send = Callable[[dict[str, Any]], Awaitable[None]]
"""The ASGI send callable of one connection."""
SendNow = Callable[[Sequence["Outgoing"]], bool]
"""``send_now(messages)``: write them, one text frame each, in one write now, without
waiting; ``False`` (nothing sent) when the connection cannot take them at the moment. Offered
by the server's WebSocket protocol in the connection's scope under :data:`SEND_NOW_KEY`."""
SEND_NOW_KEY: Final = "motionhub.send_now"


class Outgoing:
    """One message for the clients, shared by every client it goes to."""

    __slots__ = ("_frame", "asgi", "utf8")

    def __init__(self, text: str) -> None:
        self.asgi: dict[str, Any] = {"type": "websocket.send", "text": text}
        """The ASGI ``websocket.send`` message (one text frame)."""
        self.utf8 = text.encode()
        """The same text, encoded once for :data:`SendNow`."""
        self._frame: bytes | None = None

    @property
    def frame(self) -> bytes:
        """The message as one unmasked, uncompressed server text frame, built once by
        websockets (what it would write to any connection without extensions)."""
        if self._frame is None:
            self._frame = Frame(Opcode.TEXT, self.utf8).serialize(mask=False, extensions=[])
        return self._frame


class _Flusher:
    """Writes to every client that has something to send and a socket that can take it, in
    loop callbacks of at most ``chunk`` clients each.

    Between two chunks the event loop runs whatever else is ready: the next frame's results
    are handed over and published, so a message that arrives while a pass is under way rides
    along in the same write to every client the pass has not reached yet, and only the
    clients already served wait for the next round. Without the chunks it would wait for the
    whole pass to end and then for its own, and so would the loop's other work (MQTT, the
    API) behind a pass over thousands of clients.
    """

    __slots__ = ("_chunk", "_loop", "_ready", "_scheduled")

    def __init__(self, chunk: int) -> None:
        self._chunk = chunk
        self._ready: deque[ClientQueue] = deque()
        self._scheduled = False
        self._loop = asyncio.get_running_loop()

    def add(self, client: ClientQueue) -> None:
        self._ready.append(client)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        ready = self._ready
        # One write per client with all it has (its event and the motion that changed with
        # it, for one): the last client's event waits for one send per client, not two.
        # A client that gets more while it waits is still in line once.
        try:
            for _ in range(min(self._chunk, len(ready))):
                ready.popleft()._send_ready()
        finally:
            # Even after an unexpected error, the clients still in line get their turn.
            if ready:
                self._loop.call_soon(self._flush)
            else:
                self._scheduled = False


@dataclass(frozen=True, slots=True)
class FanOutLimits:
    """Backpressure and rate limits (see ``server.websocket`` in the configuration)."""

    queue_size: int = 256
    slow_client_timeout: float = 10.0
    max_clients: int = 5000
    motion_interval: float = 0.1
    idle_motion_interval: float = 0.5
    motion_budget: float = 2000.0
    """Motion messages per second to all clients together, for repeats of a state."""
    direct_size: int = 1100
    """Replies to one client (errors, acknowledgements, a replay) that may be unsent."""
    flush_chunk: int = 32
    """Clients written to per event-loop callback in a synchronous send pass (about a
    millisecond of the loop on loopback)."""

    def __post_init__(self) -> None:
        if self.flush_chunk < 1:
            raise ValueError(f"flush_chunk must be at least 1, not {self.flush_chunk}")


@dataclass(frozen=True, slots=True)
class CloseRequest:
    """Why a client's session ends: a WebSocket close code and reason, or ``None`` when the
    peer already went away and there is nothing left to send."""

    code: int | None
    reason: str = ""


_PEER_GONE = CloseRequest(None)


class ClientQueue:
    """One client's outbox and the writer that drains it.

    The ``offer_*`` methods and ``push_direct`` never wait; only :meth:`run` awaits the
    socket. The writer sends direct replies first (so a replay precedes the live events
    queued while storage was read), then events in order, then the newest state messages;
    and it lets the other writers run between two messages when it has a backlog, so that
    when the server is busy an event reaches every client before anyone's motion updates.
    """

    __slots__ = (
        "_busy",
        "_direct",
        "_direct_size",
        "_events",
        "_flusher",
        "_queued_flush",
        "_send",
        "_send_now",
        "_state",
        "_waiter",
        "backlog_since",
        "cameras",
        "finished",
        "name",
        "sent",
    )

    # A client with a long backlog (a replay) is sent this many messages per pass, so that
    # the others get theirs in between.
    PASS_LIMIT: Final = 16

    def __init__(
        self,
        name: str,
        send: Send,
        cameras: frozenset[str] | None,
        direct_size: int,
        *,
        send_now: SendNow | None = None,
        flusher: _Flusher | None = None,
    ) -> None:
        self.name = name
        self.cameras = cameras
        """Cameras this client wants; ``None`` means all."""
        self._send = send
        self._send_now = send_now
        self._flusher = flusher if send_now is not None else None
        self._queued_flush = False
        self._busy = False
        self._direct: deque[Outgoing] = deque()
        self._direct_size = direct_size
        self._events: deque[tuple[str | None, Outgoing]] = deque()
        self._state: dict[tuple[str, str | None], Outgoing] = {}
        self._waiter: asyncio.Future[None] | None = None
        self.backlog_since: float | None = None
        """Monotonic time since which this client has had unsent messages."""
        self.sent = 0
        self.finished: asyncio.Future[CloseRequest] = asyncio.get_running_loop().create_future()
        """Resolves once with why the session ends; the endpoint closes the socket."""

    def __repr__(self) -> str:
        return f"<ClientQueue {self.name} unsent={len(self)}>"

    def __len__(self) -> int:
        return len(self._direct) + len(self._events) + len(self._state)

    @property
    def direct_send(self) -> bool:
        """Whether the server offered a synchronous send for this client (see the module
        doc); without it every message goes through the writer task and ASGI ``send``."""
        return self._send_now is not None

    @property
    def unsent_events(self) -> int:
        """Event messages waiting to be sent (the bounded part of the queue)."""
        return len(self._events)

    def wants(self, camera: str | None) -> bool:
        """Whether a message about ``camera`` (``None``: not about one camera) passes the filter."""
        return camera is None or self.cameras is None or camera in self.cameras

    def offer_event(self, camera: str | None, data: Outgoing, now: float, limit: int) -> bool:
        """Queue a message that is never dropped. ``False`` when ``limit`` are unsent."""
        if self.finished.done():
            return True
        events = self._events
        if len(events) >= limit:
            return False
        if not events and not self._state and not self._direct:
            self.backlog_since = now
        events.append((camera, data))
        self._wake()
        return True

    def offer_state(self, key: tuple[str, str | None], data: Outgoing, now: float) -> None:
        """Queue a state message; it replaces an unsent one with the same ``(kind, camera)``."""
        if self.finished.done():
            return
        state = self._state
        if not state and not self._events and not self._direct:
            self.backlog_since = now
        state.pop(key, None)  # re-inserted last: the newest state goes out last
        state[key] = data
        self._wake()

    def push_direct(self, data: str, *, droppable: bool = False) -> bool:
        """Queue a reply to this client only. A ``droppable`` one (an error report) is
        discarded when the direct queue is full; otherwise ``False`` says it is full."""
        if self.finished.done():
            return True
        if len(self._direct) >= self._direct_size:
            return droppable
        if not self._direct and not self._events and not self._state:
            self.backlog_since = time.monotonic()
        self._direct.append(Outgoing(data))
        self._wake()
        return True

    def refilter(self, cameras: frozenset[str] | None) -> None:
        """Apply a new camera filter, also to what is already queued."""
        self.cameras = cameras
        if cameras is None:
            return
        kept = [(c, d) for c, d in self._events if c is None or c in cameras]
        self._events = deque(kept)
        for key in [k for k in self._state if k[1] is not None and k[1] not in cameras]:
            del self._state[key]

    def _wake(self) -> None:
        flusher = self._flusher
        if flusher is not None and not self._busy and not self.finished.done():
            # The writer task is idle: the next flush pass writes without waking it.
            if not self._queued_flush:
                self._queued_flush = True
                flusher.add(self)
            return
        self._wake_writer()

    def _wake_writer(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _send_ready(self) -> None:
        """Write up to ``PASS_LIMIT`` messages, in sending order, as one write if the
        socket takes them now (called by the flush pass)."""
        self._queued_flush = False
        send_now = self._send_now
        if self._busy or send_now is None or self.finished.done():
            return
        batch = self._peek(self.PASS_LIMIT)
        if not batch:
            return
        try:
            sent = send_now(batch)
        except Exception as exc:
            log.debug("ws %s: send failed: %r", self.name, exc)
            self.finish(_PEER_GONE)
            return
        if not sent:
            # A full socket (or a closing one): the writer task waits for it.
            self._wake_writer()
            return
        for _ in batch:
            self._pop()
        self.sent += len(batch)
        if len(self) and self._flusher is not None:
            self._queued_flush = True
            self._flusher.add(self)

    def _peek(self, limit: int) -> list[Outgoing]:
        """The first ``limit`` messages in sending order, without taking them."""
        batch = list(islice(self._direct, limit))
        if len(batch) < limit and self._events:
            batch.extend(data for _, data in islice(self._events, limit - len(batch)))
        if len(batch) < limit and self._state:
            batch.extend(islice(self._state.values(), limit - len(batch)))
        return batch

    def _pop(self) -> Outgoing | None:
        if self._direct:
            data = self._direct.popleft()
        elif self._events:
            data = self._events.popleft()[1]
        elif self._state:
            key = next(iter(self._state))
            data = self._state.pop(key)
        else:
            return None
        if not self._direct and not self._events and not self._state:
            self.backlog_since = None
        return data

    def finish(self, request: CloseRequest) -> None:
        """End the session (first caller wins) and drop everything unsent."""
        if not self.finished.done():
            self.finished.set_result(request)
        self._direct.clear()
        self._events.clear()
        self._state.clear()
        self.backlog_since = None
        self._wake_writer()

    async def run(self) -> None:
        """Send queued messages until the session finishes or the peer goes away."""
        loop = asyncio.get_running_loop()
        while not self.finished.done():
            message = self._pop()
            if message is None:
                # A bare future: cheaper than an asyncio.Event on this hot path.
                self._waiter = loop.create_future()
                await self._waiter
                continue
            self._busy = True
            try:
                await self._send(message.asgi)
            except Exception as exc:
                # The peer vanished (starlette raises WebSocketDisconnect, uvicorn an
                # OSError): the session is over, nothing can be sent any more.
                log.debug("ws %s: send failed: %r", self.name, exc)
                self.finish(_PEER_GONE)
                return
            finally:
                self._busy = False
            self.sent += 1
            if self.backlog_since is not None:
                # More to send: let the other writers have their turn first.
                await asyncio.sleep(0)


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
    if isinstance(message, EventDeletedMessage | CameraRemoved):
        return message.camera, None
    if isinstance(message, HelloMessage):
        return None, None
    raise TypeError(f"unroutable message type {type(message).__name__}")


class _MotionGate:
    """Per-camera rate limit for motion: a change of state passes at once, a repeat of the
    same state at most every ``interval`` (``idle_interval`` while there is no motion),
    or less often when ``clients x cameras`` repeats per interval would exceed ``budget``
    messages a second."""

    __slots__ = ("_budget", "_idle", "_interval", "_last")

    def __init__(self, interval: float, idle_interval: float, budget: float) -> None:
        self._interval = interval
        self._idle = idle_interval
        self._budget = budget
        self._last: dict[str, tuple[float, bool, tuple[tuple[str, bool], ...]]] = {}

    def allow(self, message: MotionMessage, now: float, clients: int) -> bool:
        state = (message.motion, tuple(sorted(message.zones.items())))
        last = self._last.get(message.camera)
        if last is not None and (last[1], last[2]) == state:
            wait = self._interval if message.motion else self._idle
            wait = max(wait, clients * max(1, len(self._last)) / self._budget)
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
        self._flusher: _Flusher | None = None
        limits = self.limits
        self._gate = _MotionGate(
            limits.motion_interval, limits.idle_motion_interval, limits.motion_budget
        )
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
        self,
        name: str,
        send: Send,
        cameras: frozenset[str] | None = None,
        send_now: SendNow | None = None,
    ) -> ClientQueue | None:
        """Add a client that will receive every later message, or ``None`` when full.

        ``send_now``, when the server offers it, writes without waiting (see the module doc).
        """
        if len(self._clients) >= self.limits.max_clients:
            return None
        if send_now is not None and self._flusher is None:
            self._flusher = _Flusher(self.limits.flush_chunk)
        client = ClientQueue(
            name, send, cameras, self.limits.direct_size, send_now=send_now, flusher=self._flusher
        )
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
            if not self._gate.allow(message, now, len(self._clients)):
                self.rate_limited += 1
                return
        elif isinstance(message, CameraRemoved):
            self._gate.forget(message.camera)
        camera, kind = _route(message)
        data = Outgoing(message.model_dump_json())
        self.published += 1
        if kind is not None:
            key = (kind, camera)
            for client in self._clients:
                if client.wants(camera):
                    client.offer_state(key, data, now)
            return
        limit = self.limits.queue_size
        overflowed = [
            client
            for client in self._clients
            if client.wants(camera) and not client.offer_event(camera, data, now, limit)
        ]
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
