"""Commands that arrive over MQTT: parse strictly, apply through the core, never crash.

``<prefix>/<camera>/detect/set`` takes ``ON`` or ``OFF`` (any case, surrounding
whitespace ignored); ``<prefix>/<camera>/threshold/set`` takes a decimal integer in
0..255 (0 = automatic). Anything else raises :class:`CommandError` with a reason a
person can read; the caller logs it and carries on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from server.mqtt.topics import CommandKind

__all__ = [
    "MAX_PAYLOAD",
    "THRESHOLD_MAX",
    "THRESHOLD_MIN",
    "Command",
    "CommandError",
    "parse_command",
    "parse_switch",
    "parse_threshold",
]

MAX_PAYLOAD = 32
THRESHOLD_MIN = 0
THRESHOLD_MAX = 255
_INT = re.compile(r"^[+]?[0-9]{1,6}$")


class CommandError(ValueError):
    """A command payload that cannot be applied; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Command:
    """A parsed command: switch detection, or set the detector threshold."""

    camera: str
    kind: CommandKind
    value: bool | int


def _text(payload: bytes) -> str:
    if len(payload) > MAX_PAYLOAD:
        raise CommandError(f"payload longer than {MAX_PAYLOAD} bytes")
    try:
        return payload.decode("ascii").strip()
    except UnicodeDecodeError:
        raise CommandError("payload is not ASCII text") from None


def parse_switch(payload: bytes) -> bool:
    """``True`` for ``ON``, ``False`` for ``OFF``."""
    text = _text(payload).upper()
    if text == "ON":
        return True
    if text == "OFF":
        return False
    raise CommandError("expected ON or OFF")


def parse_threshold(payload: bytes) -> int:
    """An integer threshold within 0..255."""
    text = _text(payload)
    if not _INT.fullmatch(text):
        raise CommandError(f"expected an integer {THRESHOLD_MIN}..{THRESHOLD_MAX}")
    value = int(text)
    if not THRESHOLD_MIN <= value <= THRESHOLD_MAX:
        raise CommandError(f"threshold {value} outside {THRESHOLD_MIN}..{THRESHOLD_MAX}")
    return value


def parse_command(camera: str, kind: CommandKind, payload: bytes) -> Command:
    """Parse the payload of a ``kind`` command for ``camera``."""
    if kind == "detect":
        return Command(camera, kind, parse_switch(payload))
    return Command(camera, kind, parse_threshold(payload))
