"""Reconnect delays: exponential, capped, with "equal jitter".

Every reconnect loop (camera readers, the server's supervised tasks, the MQTT link, and
the listen, light and watch clients) waits ``first * 2**attempt`` seconds, at most
``cap``, of which half is fixed and half random: between half and all of that ceiling.
The random half keeps many readers or servers that lost one peer from coming back in
lockstep; the fixed half keeps a retry from following a failure at once.
"""

from __future__ import annotations

import random

__all__ = ["Backoff", "backoff_delay"]

_MAX_EXPONENT = 30  # 2**30 times any sane first delay is far past any cap


def backoff_delay(
    attempt: int, first: float, cap: float, rng: random.Random | None = None
) -> float:
    """Seconds before reconnect attempt ``attempt`` (0-based): ``first * 2**attempt``
    capped at ``cap``, then a uniformly random point between half of that and all of it."""
    ceiling = min(cap, first * 2.0 ** min(attempt, _MAX_EXPONENT))
    return (rng or random).uniform(ceiling / 2, ceiling)


class Backoff:
    """The delays of one reconnect loop: :meth:`next` before each retry, :meth:`reset`
    after a connection that worked, or :meth:`next_after` where only how long an attempt
    lasted tells whether it worked."""

    def __init__(self, *, first: float, cap: float, rng: random.Random | None = None) -> None:
        if first <= 0 or cap <= 0:
            raise ValueError(f"backoff delays must be positive, not first={first}, cap={cap}")
        self.first = first
        self.cap = cap
        self._rng = rng
        self._attempt = 0

    @property
    def attempt(self) -> int:
        """Retries since the last :meth:`reset` (0-based number of the next one)."""
        return self._attempt

    def next(self) -> float:
        """The delay before the next attempt."""
        delay = backoff_delay(self._attempt, self.first, self.cap, self._rng)
        self._attempt += 1
        return delay

    def reset(self) -> None:
        """Start again from the shortest delay."""
        self._attempt = 0

    def next_after(self, ran: float | None, stable: float) -> float:
        """The delay before the next attempt, after one that ran ``ran`` seconds (None: it
        never got going). One that ran at least ``stable`` seconds worked: the delays start
        again from the shortest, as after :meth:`reset`."""
        if ran is not None and ran >= stable:
            self.reset()
        return self.next()
