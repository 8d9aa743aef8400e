"""Retained state, coalesced: only the latest value of each topic is ever sent.

Status, motion, fps, command states, snapshots and discovery configs are all
"the current value of a topic". The store remembers the latest value per topic and
which topics changed since they were last published; a burst of changes to one
topic while the broker is slow or away costs one publish. After every reconnect
everything is marked changed and sent again, so the broker's retained copies are
right even if it lost them. An empty value clears the retained message and is
then forgotten.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["SnapshotRef", "StateStore", "StateValue"]


@dataclass(frozen=True, slots=True)
class SnapshotRef:
    """An event's best JPEG, fetched from storage only when it is about to be sent."""

    event_id: str
    version: int
    """Bumped whenever the event reports a better snapshot, so it counts as a change."""


StateValue = bytes | SnapshotRef


class StateStore:
    """Latest value per retained topic, plus the ordered set of topics not yet sent."""

    def __init__(self) -> None:
        self._values: dict[str, StateValue] = {}
        self._dirty: dict[str, None] = {}
        self._busy = 0
        self.changed = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    def set(self, topic: str, value: StateValue) -> None:
        """Make ``value`` the current state of ``topic`` (no-op if it already is)."""
        if topic in self._values and self._values[topic] == value:
            return
        self._values[topic] = value
        self._mark(topic)

    def clear(self, topic: str) -> None:
        """Remove the retained message of ``topic`` from the broker."""
        self.set(topic, b"")

    def get(self, topic: str) -> StateValue | None:
        """The current value, or ``None`` if the topic is not known."""
        return self._values.get(topic)

    def mark(self, topics: Iterable[str]) -> None:
        """Send these topics again even though they did not change."""
        for topic in topics:
            if topic in self._values:
                self._mark(topic)

    def mark_all(self) -> None:
        """Send every known topic again (after a reconnect)."""
        self.mark(list(self._values))

    def take(self) -> list[tuple[str, StateValue]]:
        """The changed topics with their values, oldest change first; they count as busy
        until :meth:`done` is called for each."""
        batch = [(t, self._values[t]) for t in self._dirty if t in self._values]
        self._dirty.clear()
        self.changed.clear()
        self._busy += len(batch)
        return batch

    def done(self, topic: str, value: StateValue, sent: bool) -> None:
        """Report the outcome of publishing ``value`` on ``topic``."""
        self._busy -= 1
        if sent and value == b"" and self._values.get(topic) == b"":
            del self._values[topic]
        elif not sent and self._values.get(topic) == value:
            self._mark(topic)
        if self._busy == 0 and not self._dirty:
            self._idle.set()

    async def wait_idle(self, within: float) -> bool:
        """Wait up to ``within`` seconds until nothing is left to send."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await self._idle.wait()
        return self._idle.is_set()

    @property
    def pending(self) -> int:
        """Topics waiting to be sent."""
        return len(self._dirty)

    def __contains__(self, topic: object) -> bool:
        return topic in self._values

    def _mark(self, topic: str) -> None:
        self._dirty[topic] = None
        self._idle.clear()
        self.changed.set()
