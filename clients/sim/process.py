"""Server subprocesses that listen on a TCP port: start, wait until ready, stop, reap.

Each simulated camera server runs as a child process, so that stopping it is a real
outage (the port refuses connections, open streams break) and so that its threads and
file descriptors never show up in the process under test.

Children get a pipe as stdin and exit when it closes, so they never outlive their
parent, even one killed with SIGKILL. Their output goes to a temporary file, quoted
in the error when they fail to start.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import tempfile
import time
import weakref
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import IO, Self

from clients.sim.encode import SimulatorError

__all__ = ["ChildServer", "ChildServerFront", "free_port", "port_open", "reap"]

_POLL_S = 0.05
_OUTPUT_TAIL = 4000


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now (another process could still take it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def connect_host(host: str) -> str:
    """The address to connect to for a server bound to ``host`` (wildcards become loopback)."""
    return {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # noqa: S104


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((connect_host(host), port), timeout=timeout):
            return True
    except OSError:
        return False


def reap(procs: Sequence[subprocess.Popen[bytes]], timeout: float) -> None:
    """Terminate, then kill any still running ``timeout`` seconds later, and always wait,
    so no zombie is left; close each one's stdin.

    Every process is sent SIGTERM before any is waited for, so several that exit on it
    stop together instead of one after another.
    """
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()


class ChildServer:
    """One server subprocess listening on ``host:port``; can be stopped and started again."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        host: str,
        port: int,
        name: str,
        env: Mapping[str, str] | None = None,
        ready_timeout: float = 20.0,
        stop_timeout: float = 3.0,
    ) -> None:
        self.argv = list(argv)
        self.host = host
        self.port = port
        self.name = name
        self.env = dict(env) if env is not None else None
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._output: IO[bytes] | None = None
        self._finalizer: (
            weakref.finalize[[Sequence[subprocess.Popen[bytes]], float], ChildServer] | None
        ) = None

    @property
    def running(self) -> bool:
        """Whether the child process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs."""
        return self._proc.pid if self.running and self._proc is not None else None

    def output(self) -> str:
        """The tail of what the child has written to stdout and stderr."""
        if self._output is None:
            return ""
        self._output.flush()
        size = os.fstat(self._output.fileno()).st_size
        data = os.pread(self._output.fileno(), _OUTPUT_TAIL, max(0, size - _OUTPUT_TAIL))
        return data.decode(errors="replace").strip()

    def start(self) -> None:
        """Start the child and wait until its port accepts connections.

        Raises :class:`SimulatorError` with the child's output if it exits or does not
        listen within ``ready_timeout`` seconds.
        """
        if self.running:
            return
        self._cleanup()
        if port_open(self.host, self.port, timeout=0.2):
            raise SimulatorError(f"{self.name}: port {self.port} is already in use")
        # Open for the child's lifetime; closed by _cleanup() after the child is reaped.
        self._output = tempfile.TemporaryFile(prefix="motionhub-sim-")  # noqa: SIM115
        env = None if self.env is None else {**os.environ, **self.env}
        proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE,
            stdout=self._output,
            stderr=subprocess.STDOUT,
            env=env,
            # Own session: a Ctrl-C in the terminal reaches only the parent, which then
            # stops its children in order.
            start_new_session=True,
        )
        self._proc = proc
        self._finalizer = weakref.finalize(self, reap, [proc], self.stop_timeout)
        deadline = time.monotonic() + self.ready_timeout
        while not port_open(self.host, self.port, timeout=0.2):
            code = proc.poll()
            if code is not None:
                output = self.output()
                self.stop()
                raise SimulatorError(
                    f"{self.name} exited with status {code} before listening on port "
                    f"{self.port}:\n{output}"
                )
            if time.monotonic() > deadline:
                output = self.output()
                self.stop()
                raise SimulatorError(
                    f"{self.name} did not listen on port {self.port} within "
                    f"{self.ready_timeout:g} s:\n{output}"
                )
            time.sleep(_POLL_S)

    def stop(self) -> None:
        """Stop the child (SIGTERM, then SIGKILL after ``stop_timeout``) and reap it."""
        if self._proc is not None:
            reap([self._proc], self.stop_timeout)
        self._cleanup()

    def kill(self) -> None:
        """Kill the child at once (SIGKILL), like a camera losing power, and reap it."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
        self.stop()

    def returncode(self) -> int | None:
        """The exit status if the child has exited, else None."""
        return None if self._proc is None else self._proc.poll()

    def _cleanup(self) -> None:
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if self._proc is not None and self._proc.poll() is not None:
            self._proc = None
        if self._output is not None and self._proc is None:
            self._output.close()
            self._output = None


class ChildServerFront:
    """The lifecycle face shared by the simulated cameras: everything delegates to the
    :class:`ChildServer` in ``self._server`` that a subclass creates."""

    _server: ChildServer

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._server.running

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._server.pid

    def output(self) -> str:
        """The tail of the server's log output."""
        return self._server.output()

    def start(self) -> Self:
        """Start serving (again, on the same port); returns once the port accepts connections."""
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop serving: an outage. Terminates the server and reaps it."""
        self._server.stop()

    def kill(self) -> None:
        """Kill the server abruptly (SIGKILL), like a camera losing power."""
        self._server.kill()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
