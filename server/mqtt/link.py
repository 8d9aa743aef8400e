"""The broker connection: one supervisor task owns the aiomqtt client for its lifetime.

:meth:`MqttLink.run` connects, subscribes, lets its :class:`LinkHandler` publish the
current states, announces ``<prefix>/available = online`` (retained), and hands the live
client to the handler until the connection breaks. Then it waits a capped, jittered,
exponentially growing delay and starts over with a fresh client, resubscribing every
time. The broker holds
a last will of ``offline`` (retained, QoS 1) that fires if the process dies;
:meth:`MqttLink.stop` publishes the same ``offline`` itself before a clean
disconnect. The state is an enum plus an :class:`asyncio.Event` for readiness
checks and metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
import secrets
import socket
import ssl
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import aiomqtt
from paho.mqtt.reasoncodes import ReasonCode

from server.backoff import Backoff
from server.config import MqttSettings
from server.mqtt.payloads import OFFLINE, ONLINE
from server.mqtt.topics import Topics
from server.redact import redact_url
from server.redact import secrets as secret_registry

__all__ = ["LinkHandler", "LinkState", "MqttLink", "login_refused", "raise_if_cancelling"]

log = logging.getLogger(__name__)

_STABLE_AFTER = 5.0
"""A connection that lasted this many seconds resets the backoff."""
_INFLIGHT = 32
"""QoS 1 messages on the wire at once before paho queues them (in order)."""


class LinkState(enum.Enum):
    """Where the supervisor is."""

    STOPPED = "stopped"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    WAITING = "waiting"
    """Disconnected, waiting out the backoff before the next attempt."""


class LinkHandler(Protocol):
    """What runs on top of a connection (see :class:`server.mqtt.service.MqttService`)."""

    def subscriptions(self) -> list[str]:
        """Topic filters to (re)subscribe to after every connect."""
        ...

    async def announce(self, client: aiomqtt.Client) -> None:
        """Publish what must be on the broker before ``online`` is (after subscribing)."""
        ...

    async def session(self, client: aiomqtt.Client) -> None:
        """Publish for as long as the connection lives; an exception ends the connection."""
        ...

    async def handle(self, message: aiomqtt.Message) -> None:
        """One incoming message; must not raise."""
        ...

    async def drain(self, grace: float) -> None:
        """On a clean stop: give pending messages up to ``grace`` seconds to go out."""
        ...


class _Stopped(Exception):
    """Raised inside a session to end it after a clean stop."""


_LOGIN_REFUSED = frozenset({4, 5, 134, 135})
"""CONNACK codes for a refused login: MQTT 3.1.1's bad user name or password (4) and not
authorized (5), MQTT 5's 134 and 135."""


def raise_if_cancelling() -> None:
    """Raise :class:`asyncio.CancelledError` when the current task has been asked to stop.

    On Python 3.11 ``asyncio.wait_for``, which aiomqtt's ``publish`` and ``subscribe`` wait
    with, drops a cancellation that arrives just as the broker's acknowledgement does: the
    call returns normally and the task goes on as if nobody had asked it to stop. A task
    that calls them in a loop checks this after each call, so a stop is never lost.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def login_refused(exc: BaseException) -> bool:
    """Whether ``exc`` is the broker refusing the client's credentials."""
    if not isinstance(exc, aiomqtt.MqttCodeError):
        return False
    rc = exc.rc
    code = rc.value if isinstance(rc, ReasonCode) else rc
    return code in _LOGIN_REFUSED


def _settle(client: aiomqtt.Client | None) -> None:
    """Leave nothing of a finished connection attempt behind.

    aiomqtt keeps the disconnect error in a future that only its message iterator reads;
    when the session ended some other way, asyncio would log "exception was never
    retrieved". And when the broker never answers the CONNECT (a TLS peer that rejects
    the client certificate, say), aiomqtt gives up without closing paho's socket, which
    would leak a file descriptor and an event-loop reader per attempt.
    """
    if client is None:
        return
    fut = getattr(client, "_disconnected", None)
    if isinstance(fut, asyncio.Future) and fut.done() and not fut.cancelled():
        fut.exception()
    paho = getattr(client, "_client", None)
    if paho is not None and paho.socket() is not None:
        paho._sock_close()


def _write_at_once(client: aiomqtt.Client) -> None:
    """Send a packet paho queues on the event loop's thread at once, as paho itself does
    when it owns its loop.

    aiomqtt gives paho an external loop: a queued packet only registers the socket for
    writing, through ``call_soon_threadsafe(add_writer)``, so it leaves two loop turns
    later, behind everything else ready then (under load, the WebSocket pass of the same
    burst). Here paho's ``loop_write`` runs first, and aiomqtt's writer is registered only
    for what the socket did not take, or after an exception, which it then meets again and
    reports. A write that loses the connection is handled by paho as in its own loop: it
    closes the socket and reports the disconnect. From another thread (aiomqtt connects in
    an executor) nothing changes.
    """
    paho = getattr(client, "_client", None)
    if paho is None:  # pragma: no cover - aiomqtt 2.x always has it
        return
    register = paho.on_socket_register_write
    loop = asyncio.get_running_loop()

    def on_register_write(c: Any, userdata: Any, sock: Any) -> None:
        if _running_loop() is loop and (_wrote_all(c) or c.socket() is not sock):
            return  # all sent, or the write lost the connection and paho closed the socket
        register(c, userdata, sock)

    paho.on_socket_register_write = on_register_write


def _wrote_all(paho: Any) -> bool:
    try:
        paho.loop_write()
    except Exception:  # aiomqtt's writer, registered instead, meets it again and reports it
        return False
    return not paho.want_write()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _handshake_failed(exc: BaseException) -> bool:
    """Whether connecting failed in a way a TLS client talking to a plain port meets.

    aiomqtt turns the socket error into an :class:`aiomqtt.MqttError` ``from None``, so the
    error itself is its context. A plain MQTT broker drops the connection when a TLS greeting
    arrives instead of CONNECT (a reset, or an SSL error such as an unexpected EOF); a
    certificate that fails verification is a TLS answer and says so itself.
    """
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, ssl.SSLCertVerificationError):
        return False
    return isinstance(cause, ssl.SSLError | ConnectionResetError | ConnectionAbortedError)


def _flatten(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        out: list[BaseException] = []
        for inner in exc.exceptions:
            out.extend(_flatten(inner))
        return out
    return [exc]


class MqttLink:
    """Owns the aiomqtt client: connect, reconnect, announce availability, stop cleanly."""

    def __init__(
        self,
        settings: MqttSettings,
        handler: LinkHandler,
        *,
        timeout: float = 10.0,
        stop_grace: float = 2.0,
        rng: random.Random | None = None,
        on_state: Callable[[LinkState], None] | None = None,
    ) -> None:
        self._settings = settings
        self._handler = handler
        self._timeout = timeout
        self._stop_grace = stop_grace
        self._rng = rng or random.Random()
        self._on_state = on_state
        self.topics = Topics(settings.topic_prefix, settings.discovery.prefix)
        self.client_id = (
            settings.client_id or f"motionhub-{self.topics.node}-{secrets.token_hex(4)}"
        )
        self.state = LinkState.STOPPED
        self.connected = asyncio.Event()
        """Set while connected (``online`` published and subscriptions made)."""
        self.connects = 0
        """Successful connections so far; every one after the first is a reconnect."""
        self.failures = 0
        """Failed connection attempts and lost connections."""
        self.last_error: str | None = None
        self._stop = asyncio.Event()
        self._done = asyncio.Event()
        self._done.set()
        parts = urlsplit(settings.url)
        self._tls = parts.scheme == "mqtts"
        self._host = parts.hostname or "localhost"
        self._port = parts.port or (8883 if self._tls else 1883)
        self._username = settings.username or (unquote(parts.username) if parts.username else None)
        password = settings.password.get_secret_value() if settings.password else None
        if password is None and parts.password:
            password = unquote(parts.password)
        self._password = password
        # Whatever text leaves this process (logs, errors) is scrubbed of these.
        secret_registry.add(password)
        secret_registry.add_url(settings.url)
        self.where = redact_url(settings.url)

    @property
    def reconnects(self) -> int:
        """Connections made after the first one."""
        return max(0, self.connects - 1)

    def request_stop(self) -> None:
        """Ask :meth:`run` to publish ``offline``, disconnect and return."""
        self._stop.set()

    def rearm(self) -> None:
        """Forget an earlier stop request, before :meth:`run` starts again."""
        self._stop.clear()

    async def stop(self, grace: float = 5.0) -> None:
        """Request a clean stop and wait (up to ``grace`` seconds) for :meth:`run` to return."""
        self.request_stop()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await self._done.wait()

    async def run(self) -> None:
        """Keep a connection to the broker until :meth:`stop`; never raises on broker trouble."""
        self._done.clear()
        loop = asyncio.get_running_loop()
        settings = self._settings
        backoff = Backoff(first=settings.reconnect_min, cap=settings.reconnect_max, rng=self._rng)
        try:
            while not self._stop.is_set():
                self._set_state(LinkState.CONNECTING)
                started: float | None = None
                client: aiomqtt.Client | None = None
                try:
                    client = self._new_client()
                    async with client:
                        started = loop.time()
                        await self._session(client)
                except Exception as exc:  # the supervisor outlives any failure
                    self._failed(exc, backoff.attempt)
                finally:
                    self.connected.clear()
                    _settle(client)
                if self._stop.is_set():
                    break
                ran = None if started is None else loop.time() - started
                delay = backoff.next_after(ran, _STABLE_AFTER)
                self._set_state(LinkState.WAITING)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._stop.wait()
        finally:
            self.connected.clear()
            self._set_state(LinkState.STOPPED)
            self._done.set()

    def _failed(self, exc: Exception, attempt: int) -> None:
        errors = [e for e in _flatten(exc) if not isinstance(e, _Stopped)]
        if not errors:
            return
        self.failures += 1
        mqtt_errors = [e for e in errors if isinstance(e, aiomqtt.MqttError)]
        first = mqtt_errors[0] if mqtt_errors else errors[0]
        # Text, not the exception: a log record kept by a handler would otherwise keep the
        # failed attempt's traceback, and with it paho's socket, alive.
        reason = str(first)
        if self._tls and self.state is not LinkState.CONNECTED and _handshake_failed(first):
            reason = (
                f"TLS handshake with {self._host}:{self._port} failed ({reason}); that port "
                "may not speak TLS: use mqtt:// for a plain MQTT port, or the broker's TLS "
                "port (often 8883)"
            )
        self.last_error = f"{type(first).__name__}: {reason}"
        if not mqtt_errors:
            log.error("MQTT session failed; reconnecting", exc_info=first)
        elif login_refused(first):
            if attempt & (attempt - 1) == 0:  # attempts 0, 1, 2, 4, 8... as below
                log.warning(
                    "MQTT broker %s refused the login (attempt %d): %s; check mqtt.username "
                    "and mqtt.password, and the broker's access rules",
                    self.where,
                    attempt + 1,
                    reason,
                )
        elif self.state is LinkState.CONNECTED:
            log.warning("MQTT connection to %s lost: %s", self.where, reason)
        elif attempt & (attempt - 1) == 0:
            # Attempts 0, 1, 2, 4, 8...: enough to see the problem without flooding the log.
            log.warning(
                "MQTT broker %s unreachable (attempt %d): %s", self.where, attempt + 1, reason
            )

    async def _session(self, client: aiomqtt.Client) -> None:
        topics = self.topics
        for topic in self._handler.subscriptions():
            await client.subscribe(topic, qos=1)
        # The states first: a crash leaves them as they were (a camera "online", its motion
        # "ON"), and whoever hears "online" before they are right takes them as current.
        await self._handler.announce(client)
        await client.publish(topics.available, ONLINE, qos=1, retain=True)
        self.connects += 1
        self._set_state(LinkState.CONNECTED)
        self.connected.set()
        log.info("MQTT connected to %s as %s", self.where, self.client_id)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._read(client), name="mqtt-read")
                tg.create_task(self._handler.session(client), name="mqtt-publish")
                tg.create_task(self._until_stop(client), name="mqtt-stop")
        except* _Stopped:
            log.info("MQTT disconnecting from %s", self.where)

    async def _read(self, client: aiomqtt.Client) -> None:
        # The iterator raises MqttError as soon as the connection drops, which ends the
        # session's task group and with it any publish waiting for an acknowledgement.
        async for message in client.messages:
            await self._handler.handle(message)

    async def _until_stop(self, client: aiomqtt.Client) -> None:
        await self._stop.wait()
        await self._handler.drain(self._stop_grace)
        await client.publish(
            self.topics.available, OFFLINE, qos=1, retain=True, timeout=self._stop_grace
        )
        raise _Stopped

    def _new_client(self) -> aiomqtt.Client:
        s = self._settings
        tls_params: aiomqtt.TLSParameters | None = None
        if self._tls:
            tls_params = aiomqtt.TLSParameters(
                ca_certs=str(s.tls.ca) if s.tls.ca else None,
                certfile=str(s.tls.cert) if s.tls.cert else None,
                keyfile=str(s.tls.key) if s.tls.key else None,
                cert_reqs=ssl.CERT_NONE if s.tls.insecure else ssl.CERT_REQUIRED,
            )
        client = aiomqtt.Client(
            self._host,
            self._port,
            username=self._username,
            password=self._password,
            identifier=self.client_id,
            will=aiomqtt.Will(self.topics.available, OFFLINE, qos=1, retain=True),
            keepalive=s.keepalive,
            timeout=self._timeout,
            tls_params=tls_params,
            tls_insecure=s.tls.insecure if self._tls else None,
            max_inflight_messages=_INFLIGHT,
            # Each event message is one small write that must not wait for the broker's
            # acknowledgement of the one before it (Nagle's algorithm; paho leaves it on).
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        )
        # A reconnect republishes every retained state at once; that is expected, not a leak.
        client.pending_calls_threshold = 1 << 20
        _write_at_once(client)
        return client

    def _set_state(self, state: LinkState) -> None:
        if state is self.state:
            return
        self.state = state
        if self._on_state is not None:
            self._on_state(state)
