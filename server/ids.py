"""Sortable unique ids (ULID): 48 bits of milliseconds then 80 random bits, Crockford base32.

Event ids sort by start time, so "everything after id X" is a plain string comparison in
SQLite and a cursor for paging. Within one process the generator is monotonic: an id is
always greater than the one before it, even within the same millisecond or if the wall
clock steps back, which keeps WebSocket ``resume`` exact.
"""

from __future__ import annotations

import re
import secrets
import threading
import time

__all__ = ["ULID_PATTERN", "UlidGenerator", "id_time", "is_ulid", "new_id"]

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_DECODE = {c: i for i, c in enumerate(_ALPHABET)}
_RANDOM_BITS = 80
_RANDOM_MAX = (1 << _RANDOM_BITS) - 1
ULID_PATTERN = r"^[0-7][0-9A-HJKMNP-TV-Z]{25}$"
_ULID_RE = re.compile(ULID_PATTERN)


def _encode(value: int) -> str:
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


class UlidGenerator:
    """Thread-safe, monotonic ULID source."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = -1
        self._last_rand = 0

    def new(self, ts: float | None = None) -> str:
        """A new id for the Unix time ``ts`` (now when ``None``)."""
        ms = int((time.time() if ts is None else ts) * 1000)
        with self._lock:
            if ms <= self._last_ms:
                # Same millisecond or a clock step back: stay on the last time, count up.
                ms = self._last_ms
                rand = self._last_rand + 1
                if rand > _RANDOM_MAX:
                    ms += 1
                    rand = secrets.randbits(_RANDOM_BITS - 1)
            else:
                # One spare bit keeps room to count up within the millisecond.
                rand = secrets.randbits(_RANDOM_BITS - 1)
            self._last_ms, self._last_rand = ms, rand
        return _encode((ms << _RANDOM_BITS) | rand)


_default = UlidGenerator()


def new_id(ts: float | None = None) -> str:
    """A new id from the process-wide generator."""
    return _default.new(ts)


def is_ulid(value: str) -> bool:
    """Whether ``value`` is a well-formed id."""
    return bool(_ULID_RE.fullmatch(value))


def id_time(value: str) -> float:
    """The Unix time (seconds) encoded in an id."""
    n = 0
    for c in value[:10]:
        n = (n << 5) | _DECODE[c]
    return n / 1000.0
