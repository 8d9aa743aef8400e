"""Logging set-up: readable text by default, JSON lines on request, secrets always scrubbed."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, Literal

from server.redact import redact_text

__all__ = ["JsonFormatter", "TextFormatter", "setup_logging"]

# uvicorn adds an ANSI-coloured copy of each message; the plain one is enough.
_STANDARD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "color_message",
}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS}


class TextFormatter(logging.Formatter):
    """``2026-01-01 12:00:00.123 INFO  server.cameras  cam1 online  camera=cam1``"""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.created))
        line = f"{stamp}.{int(record.msecs):03d} {record.levelname:<7} {record.name}  "
        line += record.getMessage()
        extras = _extras(record)
        if extras:
            line += "  " + " ".join(f"{k}={v}" for k, v in extras.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return redact_text(line)


class JsonFormatter(logging.Formatter):
    """One JSON object a line, with any ``extra=`` fields as keys."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        doc.update(_extras(record))
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        # Each value is masked before it is encoded: masking the encoded line could take a
        # closing quote for part of a credential and leave a line that is not JSON.
        return json.dumps(_redacted(doc))


def _redacted(value: Any) -> Any:
    """``value`` with every string in it passed through :func:`redact_text`; what JSON
    cannot hold becomes its (masked) ``str()``."""
    if isinstance(value, str):
        return redact_text(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, dict):
        return {redact_text(str(k)): _redacted(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(v) for v in value]
    return redact_text(str(value))


def setup_logging(level: str = "INFO", fmt: Literal["text", "json"] = "text") -> None:
    """Route every logger (ours, uvicorn's, the libraries') to stderr in one format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers.clear()
        lg.propagate = True
    # PyAV/FFmpeg and the MQTT client are chatty at DEBUG; keep them at WARNING unless asked.
    quiet = logging.WARNING if level.upper() != "DEBUG" else logging.DEBUG
    for name in ("libav", "av", "aiomqtt", "websockets", "multipart", "httpx"):
        logging.getLogger(name).setLevel(quiet)
