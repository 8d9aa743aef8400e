"""How a validation error reads in the product's messages: its location as a key path
(``cameras[0].url``) and its message without pydantic's "Value error, " prefix.

The config file's errors, the API's 422s, the camera table's warnings and ``eval --set`` all
word them this way.
"""

from __future__ import annotations

import json
import re

from pydantic import ValidationError

__all__ = ["Loc", "error_lines", "loc_text", "plain_message"]

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")

Loc = tuple[int | str, ...]
"""Where a value sits: its keys and list indexes from the top."""


def loc_text(loc: Loc) -> str:
    """``loc`` as a key path: ``cameras[0].url``, odd keys quoted (``zones["a b"]``)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not _PLAIN_KEY.fullmatch(part):
            out += f"[{json.dumps(part)}]"
        else:
            out += f".{part}" if out else part
    return out or "(top level)"


def plain_message(msg: object) -> str:
    """A validation error's message without pydantic's "Value error, " prefix, which our own
    checks' messages (they name what is wrong) do not need."""
    return str(msg).removeprefix("Value error, ")


def error_lines(exc: ValidationError) -> list[str]:
    """``KEY: why`` for each error of ``exc``; the rejected input is never shown."""
    return [
        f"{loc_text(err['loc'])}: {plain_message(err['msg'])}"
        for err in exc.errors(include_url=False, include_input=False)
    ]
