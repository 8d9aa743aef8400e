"""``motionhub watch``: follow a server's WebSocket feed in the terminal.

Prints camera status, events and (optionally) every motion update, one line each,
and reconnects with backoff, resuming from the last event it saw.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import datetime
from typing import Any

import click
import websockets

from clients.urls import checked_url
from server.backoff import Backoff
from server.redact import redact_url

__all__ = ["format_message", "watch", "watch_command"]


def _clock(ts: float | None = None) -> str:
    return (datetime.fromtimestamp(ts) if ts else datetime.now()).strftime("%H:%M:%S")


def format_message(msg: dict[str, Any], show_motion: bool = False) -> str | None:
    """One human line for a server message, or ``None`` to skip it."""
    kind = msg.get("type")
    if kind == "hello":
        cams = ", ".join(f"{c['id']} ({c['status']})" for c in msg.get("cameras", []))
        return f"{_clock()} connected to motionhub {msg.get('version')}: {cams or 'no cameras'}"
    if kind == "camera_status":
        err = f"  error: {msg['last_error']}" if msg.get("last_error") else ""
        return f"{_clock()} {msg['camera']:<12} {msg['status']:<8} {msg.get('fps', 0):.1f} fps{err}"
    if kind in ("event_start", "event_update", "event_end", "event_deleted"):
        return _event_line(kind, msg)
    if kind == "motion" and show_motion:
        zones = ",".join(z for z, on in (msg.get("zones") or {}).items() if on) or "-"
        state = "MOTION" if msg.get("motion") else "still"
        return (
            f"{_clock(msg.get('ts'))} {msg['camera']:<12} {state:<6} "
            f"score={msg.get('score', 0):.4f} boxes={len(msg.get('boxes') or [])} zones={zones}"
        )
    if kind == "error":
        return f"{_clock()} server error: {msg.get('message', msg)}"
    return None


def _event_line(kind: str, msg: dict[str, Any]) -> str:
    if kind == "event_deleted":  # by the API or retention: no event attached
        return f"{_clock()} {msg['camera']:<12} event DELETED {msg['id']}"
    ev = msg["event"]
    zones = ",".join(ev.get("zones") or []) or "-"
    label = kind.removeprefix("event_").upper()
    return (
        f"{_clock()} {ev['camera']:<12} event {label:<6} {ev['id']}  "
        f"zones={zones} peak={ev.get('peak_score', 0):.3f}"
    )


def _connect_failure(url: str, exc: Exception) -> str:
    """What went wrong connecting; raises when retrying cannot help (a 4xx answer)."""
    if isinstance(exc, websockets.InvalidStatus):
        status = exc.response.status_code
        if 400 <= status < 500 and status != 429:
            raise click.ClickException(
                f"{redact_url(url)} refused the WebSocket connection (HTTP {status}); "
                "the feed is at ws://HOST:PORT/ws"
            )
        return f"{redact_url(url)} answered HTTP {status}"
    return f"cannot connect to {redact_url(url)}: {exc}"


def _decoded(raw: str | bytes) -> dict[str, Any] | None:
    """A frame as a JSON object, or ``None`` (said on stderr) for anything else: the server
    sends only JSON objects, so this is a proxy or another service at the URL."""
    try:
        msg = json.loads(raw)
    except ValueError:
        msg = None
    if not isinstance(msg, dict):
        click.echo(f"{_clock()} skipped a frame that is not a JSON object", err=True)
        return None
    return msg


def _event_id(msg: dict[str, Any]) -> str | None:
    """The id of an event message, to resume from after a reconnect."""
    event = msg.get("event")
    if str(msg.get("type")).startswith("event_") and isinstance(event, dict):
        event_id = event.get("id")
        return event_id if isinstance(event_id, str) else None
    return None


def _line(msg: dict[str, Any], show_motion: bool) -> str | None:
    """:func:`format_message`, or ``None`` (said on stderr) for a message it cannot read."""
    try:
        return format_message(msg, show_motion)
    except (KeyError, TypeError, ValueError, AttributeError):
        click.echo(f"{_clock()} skipped a malformed {msg.get('type')!r} message", err=True)
        return None


async def watch(
    url: str,
    token: str | None,
    cameras: list[str] | None,
    show_motion: bool,
    max_messages: int | None = None,
) -> None:
    """Connect, print messages, reconnect forever (or until ``max_messages`` were printed)."""
    last_event: str | None = None
    printed = 0
    backoff = Backoff(first=0.5, cap=30.0)
    while True:
        try:
            async with websockets.connect(
                url, subprotocols=[websockets.Subprotocol("motionhub")]
            ) as ws:
                if token:
                    await ws.send(json.dumps({"type": "auth", "token": token}))
                if cameras:
                    await ws.send(json.dumps({"type": "subscribe", "cameras": cameras}))
                if last_event:
                    await ws.send(json.dumps({"type": "resume", "since": last_event}))
                backoff.reset()
                async for raw in ws:
                    msg = _decoded(raw)
                    if msg is None:
                        continue
                    last_event = _event_id(msg) or last_event
                    line = _line(msg, show_motion)
                    if line is not None:
                        click.echo(line)
                        printed += 1
                        if max_messages is not None and printed >= max_messages:
                            return
        except websockets.ConnectionClosed as exc:
            if exc.rcvd is not None and exc.rcvd.code == 1008:
                raise click.ClickException(
                    f"the server refused the token: {exc.rcvd.reason}"
                ) from None
            click.echo(f"{_clock()} connection closed ({exc}); reconnecting", err=True)
        except (OSError, websockets.InvalidHandshake) as exc:
            click.echo(f"{_clock()} {_connect_failure(url, exc)}; retrying", err=True)
        await asyncio.sleep(backoff.next())


@click.command()
@click.option("--url", default="ws://127.0.0.1:8000/ws", show_default=True, help="WebSocket URL.")
@click.option(
    "--token", envvar="MOTIONHUB_TOKEN", default=None, help="API token (or $MOTIONHUB_TOKEN)."
)
@click.option("--camera", "cameras", multiple=True, help="Only this camera (repeatable).")
@click.option("--motion/--no-motion", default=False, help="Also print every motion update.")
@click.option("--count", type=click.IntRange(1), default=None, help="Exit after N lines.")
def watch_command(
    url: str, token: str | None, cameras: tuple[str, ...], motion: bool, count: int | None
) -> None:
    """Follow a server's live WebSocket feed: camera status, events and motion."""
    checked_url(url, ("ws", "wss"), "ws://host:port/ws or wss://...")
    try:
        asyncio.run(watch(url, token, list(cameras) or None, motion, count))
    except KeyboardInterrupt:
        sys.exit(130)
