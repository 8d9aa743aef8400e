"""``motionhub listen``: follow a server's MQTT topics in the terminal.

Subscribes to everything under the topic prefix (or one camera's topics and the events
of that camera) and prints one line per message: state changes, events, commands and
snapshots. Reconnects with backoff until interrupted, but exits when the broker refuses the
credentials. Topics and payloads are described in ``docs/mqtt.md``.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import sys
from collections.abc import Callable
from datetime import datetime
from urllib.parse import unquote

import aiomqtt
import click

from clients.urls import checked_url
from server.backoff import Backoff
from server.mqtt.link import login_refused, raise_if_cancelling

__all__ = [
    "MqttTarget",
    "check_refused",
    "format_message",
    "listen",
    "listen_command",
    "topic_option",
]


class MqttTarget:
    """Where and how to connect, parsed from ``mqtt://[user:pass@]host[:port]``."""

    def __init__(self, url: str, username: str | None = None, password: str | None = None):
        parts = checked_url(url, ("mqtt", "mqtts"), "mqtt://host[:port] or mqtts://...")
        assert parts.hostname is not None  # checked_url refuses a URL without a host
        self.tls = parts.scheme == "mqtts"
        self.host = parts.hostname
        self.port = parts.port or (8883 if self.tls else 1883)
        self.username = username or (unquote(parts.username) if parts.username else None)
        self.password = password or (unquote(parts.password) if parts.password else None)

    def client(self, identifier: str | None = None) -> aiomqtt.Client:
        """A new (not yet connected) client for this target."""
        return aiomqtt.Client(
            self.host,
            self.port,
            username=self.username,
            password=self.password,
            identifier=identifier,
            tls_context=ssl.create_default_context() if self.tls else None,
        )


def check_refused(target: MqttTarget, exc: aiomqtt.MqttError) -> None:
    """Raise a one-line error when the broker refused the credentials: retrying cannot help."""
    if login_refused(exc):
        who = f"user {target.username!r}" if target.username else "anonymous clients"
        raise click.ClickException(
            f"broker {target.host}:{target.port} refused {who} ({exc}); "
            "check --username and the password"
        )


def topic_option(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Click callback: a topic (or part of one) may not hold the wildcards ``+`` and ``#``."""
    if value is not None and ("+" in value or "#" in value or not value.strip("/")):
        raise click.BadParameter(f"{value!r} is not a topic name (no '+', '#' or empty names)")
    return value


def _clock() -> str:
    return datetime.now().strftime("%H:%M:%S")


def _event_line(payload: bytes, camera: str | None) -> str | None:
    try:
        msg = json.loads(payload)
        ev = msg["event"]
        if camera is not None and ev.get("camera") != camera:
            return None
        zones = ",".join(ev.get("zones") or []) or "-"
        flag = " interrupted" if ev.get("interrupted") else ""
        return (
            f"{_clock()} {ev['camera']:<12} event {str(msg['type']).upper():<6} {ev['id']}  "
            f"zones={zones} peak={float(ev.get('peak_score', 0)):.3f}  msg={msg['id']}{flag}"
        )
    except (ValueError, KeyError, TypeError):
        return f"{_clock()} events: unreadable message {payload[:60]!r}"


def format_message(
    prefix: str, topic: str, payload: bytes, retained: bool, camera: str | None = None
) -> str | None:
    """One human line for a message on ``topic``, or ``None`` to skip it."""
    if not topic.startswith(prefix + "/"):
        return None
    rest = topic[len(prefix) + 1 :]
    if rest == "events":
        return _event_line(payload, camera)
    mark = " (retained)" if retained else ""
    if rest == "available":
        return f"{_clock()} {'server':<12} {payload.decode(errors='replace') or '-'}{mark}"
    cam, _, what = rest.partition("/")
    if camera is not None and cam != camera:
        return None
    text = payload[:80].decode(errors="replace")
    if not payload:
        line = f"{what} cleared"
    elif what == "snapshot":
        kind = "JPEG" if payload[:2] == b"\xff\xd8" else "not a JPEG"
        line = f"snapshot {len(payload)} bytes ({kind}){mark}"
    elif what.endswith("/set"):
        line = f"command {what.removesuffix('/set')} = {text}"
    else:
        line = f"{what.removesuffix('/state')} {text}{mark}"
    return f"{_clock()} {cam:<12} {line}"


async def listen(
    target: MqttTarget,
    prefix: str,
    *,
    camera: str | None = None,
    max_messages: int | None = None,
    out: Callable[[str], None] = print,
) -> None:
    """Print messages until cancelled (or until ``max_messages`` were printed)."""
    filters = [f"{prefix}/#"]
    if camera is not None:
        filters = [f"{prefix}/available", f"{prefix}/events", f"{prefix}/{camera}/#"]
    printed = 0
    backoff = Backoff(first=0.5, cap=15.0)
    while True:
        try:
            async with target.client() as client:
                for f in filters:
                    await client.subscribe(f, qos=1)
                raise_if_cancelling()
                backoff.reset()
                async for m in client.messages:
                    payload = m.payload if isinstance(m.payload, bytes) else b""
                    line = format_message(prefix, m.topic.value, payload, m.retain, camera)
                    if line is None:
                        continue
                    out(line)
                    printed += 1
                    if max_messages is not None and printed >= max_messages:
                        return
        except aiomqtt.MqttError as exc:
            check_refused(target, exc)
            delay = backoff.next()
            out(f"{_clock()} broker {target.host}:{target.port}: {exc}; retrying in {delay:.1f} s")
            await asyncio.sleep(delay)


@click.command()
@click.option("--url", default="mqtt://127.0.0.1:1883", show_default=True, help="The broker.")
@click.option(
    "--prefix",
    default="motionhub",
    show_default=True,
    callback=topic_option,
    help="mqtt.topic_prefix.",
)
@click.option(
    "--camera", default=None, callback=topic_option, help="Only this camera (and its events)."
)
@click.option("--username", default=None, help="Broker user (or in the URL).")
@click.option(
    "--password",
    envvar="MOTIONHUB_MQTT_PASSWORD",
    default=None,
    help="Broker password (better: the MOTIONHUB_MQTT_PASSWORD variable).",
)
@click.option("--count", type=click.IntRange(1), default=None, help="Exit after N lines.")
def listen_command(
    *,
    url: str,
    prefix: str,
    camera: str | None,
    username: str | None,
    password: str | None,
    count: int | None,
) -> None:
    """Follow motionhub's MQTT state and events in the terminal."""
    target = MqttTarget(url, username, password)
    try:
        asyncio.run(
            listen(
                target,
                prefix.rstrip("/"),
                camera=camera,
                max_messages=count,
                out=lambda line: print(line, flush=True),
            )
        )
    except KeyboardInterrupt:
        sys.exit(130)
