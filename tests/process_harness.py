"""``motionhub`` as a user runs it: a child process, polled over HTTP and stopped by signal."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
import yaml

__all__ = [
    "demo_url",
    "drain_stderr",
    "finish",
    "first_line",
    "listening_url",
    "motionhub",
    "poll",
    "stop",
    "write_config",
]


def write_config(path: Path, config: dict[str, Any]) -> Path:
    """``config`` as a YAML file at ``path``."""
    path.write_text(yaml.safe_dump(config))
    return path


def motionhub(*args: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
    """``motionhub ARGS...`` in a child process, stdout and stderr captured; ``env`` is added
    to this process's environment."""
    return subprocess.Popen(
        [sys.executable, "-c", "from server.cli import main; main()", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def first_line(proc: subprocess.Popen[str]) -> str:
    """The child's first line of stdout; if it ends its stdout without one, fails showing
    its exit status and stderr (why it stopped)."""
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise _ended(proc, "closed its stdout without a line")
    return line


def _ended(proc: subprocess.Popen[str], what: str, before: str = "") -> AssertionError:
    """The failure for a child that closed its output too early: ``what`` happened, with
    its exit status and the end of its stderr (``before``: what was already read of it)."""
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return AssertionError(f"{what}; exit status {proc.returncode}:\n{(before + err)[-3000:]}")


def demo_url(proc: subprocess.Popen[str]) -> str:
    """The dashboard URL a ``motionhub demo`` prints on its first line, port included (the
    real one when started with ``--port 0``)."""
    line = first_line(proc)
    found = re.search(r"http://127\.0\.0\.1:([0-9]+)/", line)
    assert found, line
    assert int(found[1]) != 0, line
    return found[0]


def listening_url(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """The URL a ``motionhub serve`` logs once it accepts connections (the real port when
    ``server.port`` is 0), and the stderr read up to that line, which :func:`stop` no
    longer returns; if it ends its stderr first, fails showing its exit status and stderr."""
    assert proc.stderr is not None
    read: list[str] = []
    while line := proc.stderr.readline():
        read.append(line)
        found = re.search(r"listening on (http://127\.0\.0\.1:([0-9]+)/)", line)
        if found:
            assert int(found[2]) != 0, line
            return found[1], "".join(read)
    raise _ended(proc, "ended its output without its URL", "".join(read))


def drain_stderr(proc: subprocess.Popen[str]) -> Callable[[], str]:
    """Read the child's stderr in a thread from now on, so that a child logging more than
    a pipe holds never blocks on it; returns a function that, once the child has exited,
    gives the stderr read from now on (which :func:`stop` then no longer returns)."""
    assert proc.stderr is not None
    pipe, proc.stderr = proc.stderr, None
    read: list[str] = []
    thread = threading.Thread(target=lambda: read.extend(pipe), name="stderr", daemon=True)
    thread.start()

    def rest() -> str:
        thread.join(30)
        assert not thread.is_alive(), "the child's stderr is still open"
        pipe.close()
        return "".join(read)

    return rest


def poll(
    url: str,
    check: Callable[[httpx.Response], bool],
    within: float = 30.0,
    proc: subprocess.Popen[str] | None = None,
    **kw: Any,
) -> httpx.Response:
    """GET ``url`` until ``check(response)`` holds; returns that response. With ``proc``,
    fails at once (showing its output) if that server process has exited."""
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            _, err = proc.communicate()
            # A drained stderr (drain_stderr) is read by its own thread, not here.
            shown = "(its log is read elsewhere)" if err is None else err[-3000:]
            raise AssertionError(f"the server exited with {proc.returncode}:\n{shown}")
        try:
            response = httpx.get(url, timeout=2, **kw)
            if check(response):
                return response
            last = response
        except httpx.TransportError as exc:
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"{url}: condition not met within {within} s, last: {last!r}")


def stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> tuple[str, str]:
    """Signal the child and collect its output (SIGKILL after 30 s, failing the test)."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"did not stop within 30 s:\n{err[-3000:]}") from None


def finish(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """The output of a child expected to exit by itself within 60 s (killed in any case)."""
    try:
        return proc.communicate(timeout=60)
    finally:
        proc.kill()
