"""A real Mosquitto broker on a free loopback port, stoppable and restartable, and a real
subscriber that records what it gets.

Kept out of conftest.py so test modules can import it by a unique name.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import aiomqtt

from clients.sim import free_port
from server.mqtt import MqttEventMessage

__all__ = [
    "MOSQUITTO",
    "Mosquitto",
    "Received",
    "Recorder",
    "first_occurrences",
    "free_port",
    "retained",
]

MOSQUITTO = Path("/usr/sbin/mosquitto")
PORT_TRIES = 5


class PortTakenError(RuntimeError):
    """Mosquitto could not bind its port: another program holds it."""


class Mosquitto:
    """A private Mosquitto broker that a test can stop and start again on the same port."""

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        users: dict[str, str] | None = None,
        extra: list[str] | None = None,
    ) -> None:
        """``extra`` lines go at the end of the config (more listeners, say)."""
        self.workdir = workdir
        # A port picked here may be taken by another program before the broker binds it
        # (Mosquitto cannot bind port 0 and say which port it got): the first start then
        # moves to another one. Restarts keep the port clients already know.
        self._may_move = port is None
        self.port = port or free_port()
        self.conf = workdir / "mosquitto.conf"
        self.log = workdir / "mosquitto.log"
        self.password_file = workdir / "passwords"
        self._lines = [
            # Started as root, mosquitto would switch to its own user and lose access to
            # the test's files; as anyone else this line has no effect.
            f"user {getpass.getuser()}",
            "persistence false",
            "max_queued_messages 100000",
            f"log_dest file {self.log}",
            "log_type error",
            "log_type warning",
        ]
        if users is not None:
            self._write_users(users)
            self._lines += ["allow_anonymous false", f"password_file {self.password_file}"]
        else:
            self._lines.append("allow_anonymous true")
        self._lines += extra or []
        self._write_conf()
        self.proc: subprocess.Popen[bytes] | None = None

    def _write_conf(self) -> None:
        lines = [f"listener {self.port} 127.0.0.1", *self._lines]
        self.conf.write_text("\n".join(lines) + "\n")

    def _write_users(self, users: dict[str, str]) -> None:
        self.password_file.write_text("")
        for user, password in users.items():
            subprocess.run(
                ["mosquitto_passwd", "-b", str(self.password_file), user, password],
                check=True,
                capture_output=True,
            )

    def allow(self, users: dict[str, str]) -> None:
        """Replace the accepted users; a running broker reloads them (SIGHUP)."""
        self._write_users(users)
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGHUP)

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        """Start the broker and wait until it accepts connections. On its first start on a
        port picked here, a port another program took meanwhile means another free port,
        up to :data:`PORT_TRIES` ports."""
        tries = PORT_TRIES if self._may_move else 1
        for attempt in range(1, tries + 1):
            try:
                self._start(timeout)
            except PortTakenError:
                if attempt == tries:
                    raise
                self.port = free_port()
                self._write_conf()
            else:
                self._may_move = False
                return

    def _start(self, timeout: float) -> None:
        assert not self.running, "broker already running"
        self.proc = subprocess.Popen(
            [str(MOSQUITTO), "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                # Once its config is read, mosquitto reports errors to its log file.
                with contextlib.suppress(OSError):
                    err += self.log.read_text(errors="replace")
                code = self.proc.returncode
                self.stop()
                failure = PortTakenError if "Address already in use" in err else RuntimeError
                raise failure(f"mosquitto exited with {code}: {err}")
            if self._answers():
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on port {self.port} within {timeout} s")

    def _answers(self) -> bool:
        """Whether an MQTT broker answers on the port: a program that took the port
        may accept connections too, but it sends no CONNACK."""
        # CONNECT, MQTT 3.1.1, clean session, empty client id; then DISCONNECT.
        connect = b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00"
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(connect)
                answer = sock.recv(4)
                with contextlib.suppress(OSError):
                    sock.sendall(b"\xe0\x00")
        except OSError:
            return False
        return answer[:1] == b"\x20"

    def stop(self, sig: int = signal.SIGKILL) -> None:
        """Stop the broker (SIGKILL by default: it loses everything, like a crash)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            self.proc.wait(timeout=10)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


# ---- a real subscriber ------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool
    qos: int
    at: float


class Recorder:
    """A real MQTT subscriber that records everything it receives."""

    def __init__(
        self,
        url: str,
        *filters: str,
        qos: int = 1,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        parts = urlsplit(url)
        self.username = username
        self.password = password
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 1883
        self.filters = filters
        self.qos = qos
        self.messages: list[Received] = []
        self._new = asyncio.Event()
        self._client: aiomqtt.Client | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Recorder:
        self._client = aiomqtt.Client(
            self.host,
            self.port,
            identifier=f"rec-{uuid.uuid4().hex[:8]}",
            username=self.username,
            password=self.password,
        )
        await self._client.__aenter__()
        for f in self.filters:
            await self._client.subscribe(f, qos=self.qos)
        self._task = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await self._task
        if self._client is not None:
            with contextlib.suppress(aiomqtt.MqttError):
                await self._client.__aexit__(None, None, None)
            fut = self._client._disconnected  # see server.mqtt.link._settle
            if fut.done() and not fut.cancelled():
                fut.exception()

    async def _read(self) -> None:
        assert self._client is not None
        async for m in self._client.messages:
            payload = m.payload if isinstance(m.payload, bytes) else b""
            self.messages.append(Received(m.topic.value, payload, m.retain, m.qos, time.time()))
            self._new.set()

    def on(self, topic: str) -> list[Received]:
        return [m for m in self.messages if m.topic == topic]

    async def wait_for(
        self, predicate: Callable[[list[Received]], bool], within: float = 10.0, what: str = ""
    ) -> None:
        """Wait up to ``within`` seconds until ``predicate(messages)`` holds."""
        try:
            async with asyncio.timeout(within):
                while not predicate(self.messages):
                    self._new.clear()
                    await self._new.wait()
        except TimeoutError:
            raise AssertionError(f"{what or 'MQTT messages'}: not within {within} s") from None

    def last(self, topic: str) -> bytes | None:
        """The latest payload received on ``topic``."""
        got = self.on(topic)
        return got[-1].payload if got else None

    async def wait_value(self, topic: str, payload: bytes, within: float = 10.0) -> None:
        """Wait until the latest payload on ``topic`` is ``payload``."""
        await self.wait_for(lambda _ms: self.last(topic) == payload, within)

    async def quiet(self, seconds: float = 0.3) -> None:
        """Wait until nothing arrived for ``seconds``."""
        while True:
            n = len(self.messages)
            await asyncio.sleep(seconds)
            if len(self.messages) == n:
                return


def first_occurrences(messages: list[Received]) -> tuple[list[MqttEventMessage], int]:
    """MQTT event messages in arrival order without redeliveries (same message id), and how
    many redeliveries there were."""
    seen: set[str] = set()
    out: list[MqttEventMessage] = []
    dupes = 0
    for m in messages:
        msg = MqttEventMessage.model_validate_json(m.payload)
        if msg.id in seen:
            dupes += 1
            continue
        seen.add(msg.id)
        out.append(msg)
    return out, dupes


async def publish(url: str, topic: str, payload: bytes, retain: bool = False) -> None:
    """One QoS 1 message to the broker at ``url`` (``mqtt://host:port``), by a client of its
    own."""
    parts = urlsplit(url)
    async with aiomqtt.Client(parts.hostname or "127.0.0.1", parts.port or 1883) as client:
        await client.publish(topic, payload, qos=1, retain=retain)


async def retained(url: str, topic_filter: str, quiet: float = 0.3) -> dict[str, Received]:
    """What a fresh subscriber gets as retained messages, latest per topic."""
    async with Recorder(url, topic_filter) as rec:
        await rec.quiet(quiet)
    return {m.topic: m for m in rec.messages if m.retain}
