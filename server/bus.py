"""The in-process hub that carries typed messages from the pipeline to its consumers.

Publishing never waits: each subscriber is a plain callback that must only enqueue
(WebSocket fan-out into per-client queues, MQTT into its outbox). A slow consumer
therefore cannot slow detection, and a failing one is logged and isolated.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from server.messages import ServerMessage

__all__ = ["Hub", "Subscriber"]

log = logging.getLogger(__name__)

Subscriber = Callable[[ServerMessage], None]


class Hub:
    """Synchronous, non-blocking publish/subscribe; call it from the event loop thread only."""

    def __init__(self) -> None:
        self._subscribers: dict[str, Subscriber] = {}

    def subscribe(self, name: str, callback: Subscriber) -> Callable[[], None]:
        """Register ``callback`` under a unique ``name``; returns the unsubscribe function."""
        if name in self._subscribers:
            raise ValueError(f"subscriber {name!r} already registered")
        self._subscribers[name] = callback
        return lambda: self._subscribers.pop(name, None) and None

    def publish(self, message: ServerMessage) -> None:
        """Hand ``message`` to every subscriber; an exception in one never reaches the others."""
        for name, callback in list(self._subscribers.items()):
            try:
                callback(message)
            except Exception:
                log.exception("subscriber %s failed on %s message", name, message.type)

    @property
    def subscriber_names(self) -> list[str]:
        """Names of the current subscribers, for diagnostics."""
        return list(self._subscribers)
