"""Reading and answering one WebSocket client's messages.

Every message from a client is untrusted: it is size-checked, parsed into the typed
models of :mod:`server.messages`, and a bad one gets an ``error`` reply while the
connection stays open. Only a wrong token ends the session (1008).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from fastapi import WebSocket
from pydantic import ValidationError

from server.messages import (
    AuthMessage,
    ErrorMessage,
    Event,
    EventEndMessage,
    EventStartMessage,
    ResumedMessage,
    ResumeMessage,
    SubscribedMessage,
    SubscribeMessage,
    client_message_adapter,
)
from server.ws.fanout import CLOSE_POLICY, CLOSE_TRY_AGAIN, ClientQueue, CloseRequest

if TYPE_CHECKING:
    from server.services import Services

__all__ = ["MAX_CLIENT_MESSAGE", "Session", "describe_error", "parse_client_message"]

log = logging.getLogger(__name__)

MAX_CLIENT_MESSAGE = 16_384
"""Largest client message read; the biggest valid one (1024 camera ids) fits easily."""


_TAG_ERRORS = {
    "union_tag_invalid": "type must be one of auth, subscribe, resume",
    "union_tag_not_found": "type is required (auth, subscribe or resume)",
}


def describe_error(exc: ValidationError) -> ErrorMessage:
    """A short ``error`` reply for a message that failed validation (input not echoed)."""
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    if any(e["type"] == "json_invalid" for e in errors):
        return ErrorMessage(code="invalid_json", message="the message is not valid JSON")
    parts = []
    for err in errors[:3]:
        where = ".".join(str(p) for p in err["loc"]) or "message"
        # Pydantic quotes the offending tag here; say what is allowed instead.
        msg = _TAG_ERRORS.get(err["type"], err["msg"])
        parts.append(f"{where}: {msg}")
    if len(errors) > 3:
        parts.append(f"and {len(errors) - 3} more")
    text = "; ".join(parts)
    if len(text) > 300:
        text = text[:297] + "..."
    return ErrorMessage(code="invalid_message", message=text)


def parse_client_message(
    text: str | bytes,
) -> AuthMessage | SubscribeMessage | ResumeMessage | ErrorMessage:
    """Parse one client frame into its typed message, or the ``error`` to send back.

    Never raises: any input, however malformed, yields one or the other.
    """
    if isinstance(text, bytes):
        return ErrorMessage(code="unsupported", message="binary messages are not supported")
    if len(text) > MAX_CLIENT_MESSAGE:
        return ErrorMessage(
            code="too_large", message=f"messages are limited to {MAX_CLIENT_MESSAGE} characters"
        )
    try:
        return client_message_adapter.validate_json(text)
    except ValidationError as exc:
        return describe_error(exc)


def replay_message(event: Event) -> str:
    """The wire form of a stored event: ``event_end`` once closed, else ``event_start``."""
    if event.end is None:
        return EventStartMessage(event=event, ts=event.start.timestamp()).model_dump_json()
    return EventEndMessage(event=event).model_dump_json()


class Session:
    """The reading half of one connection; replies go through the client's queue."""

    def __init__(
        self, websocket: WebSocket, client: ClientQueue, services: Services, replay_limit: int
    ) -> None:
        self._websocket = websocket
        self._client = client
        self._services = services
        self._replay_limit = replay_limit

    async def read(self) -> None:
        """Handle client messages until the peer disconnects or the session ends."""
        client = self._client
        while not client.finished.done():
            message = await self._websocket.receive()
            if message["type"] == "websocket.disconnect":
                client.finish(CloseRequest(None))
                return
            text = message.get("text")
            parsed = parse_client_message(text if text is not None else message.get("bytes", b""))
            if isinstance(parsed, ErrorMessage):
                self._reply(parsed.model_dump_json(), droppable=True)
            elif isinstance(parsed, AuthMessage):
                if self._services.authenticate(parsed.token) is None:
                    client.finish(CloseRequest(CLOSE_POLICY, "invalid token"))
            elif isinstance(parsed, SubscribeMessage):
                self._subscribe(parsed)
            else:
                await self._resume(parsed)

    def _reply(self, data: str, *, droppable: bool = False) -> bool:
        if self._client.push_direct(data, droppable=droppable):
            return True
        self._client.finish(CloseRequest(CLOSE_TRY_AGAIN, "client too slow: replies unsent"))
        return False

    def _subscribe(self, message: SubscribeMessage) -> None:
        cameras = None if message.cameras is None else frozenset(message.cameras)
        self._client.refilter(cameras)
        shown = None if cameras is None else sorted(cameras)
        self._reply(SubscribedMessage(cameras=shown).model_dump_json())

    async def _resume(self, message: ResumeMessage) -> None:
        # Reading storage here (not in a task) also orders a resume before any later
        # client message. The replay goes ahead of live messages queued meanwhile;
        # clients treat event messages as upserts by event id, so an overlap is harmless.
        limit = self._replay_limit
        try:
            cameras = self._client.cameras
            wanted = None if cameras is None else set(cameras)
            events = await self._services.events_after(message.since, wanted, limit)
        except Exception:
            log.exception("ws %s: reading events for resume failed", self._client.name)
            self._reply(
                ErrorMessage(
                    code="resume_failed", message="stored events could not be read"
                ).model_dump_json(),
                droppable=True,
            )
            return
        for event in events:
            if not self._reply(replay_message(event)):
                return
        done = ResumedMessage(since=message.since, count=len(events), more=len(events) >= limit)
        self._reply(done.model_dump_json())
