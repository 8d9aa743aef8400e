"""A real Mosquitto broker on a free loopback port, stoppable and restartable.

Kept out of conftest.py so test modules can import it by a unique name.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from clients.sim import free_port

__all__ = ["MOSQUITTO", "Mosquitto", "free_port"]

MOSQUITTO = Path("/usr/sbin/mosquitto")


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
        self.port = port or free_port()
        self.conf = workdir / "mosquitto.conf"
        self.log = workdir / "mosquitto.log"
        self.password_file = workdir / "passwords"
        lines = [
            f"listener {self.port} 127.0.0.1",
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
            lines += ["allow_anonymous false", f"password_file {self.password_file}"]
        else:
            lines.append("allow_anonymous true")
        lines += extra or []
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None

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
        """Start the broker and wait until it accepts connections."""
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
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}: {err}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2),
            ):
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on port {self.port} within {timeout} s")

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
