"""Simulator servers never outlive the process that started them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clients.sim.process import port_open, reap
from clients.sim.rtsp import SYSTEM_PYTHON

pytestmark = pytest.mark.usefixtures("no_leftover_children")

STARTERS = {
    "rtsp": "RtspCamera(render_clip(MOVING)).start()",
    "http": "HttpCamera(MOVING).start()",
}


@pytest.mark.parametrize("kind", sorted(STARTERS))
def test_a_server_exits_when_its_parent_is_killed(kind: str, moving_clip: Path) -> None:
    if kind == "rtsp" and not Path(SYSTEM_PYTHON).exists():
        pytest.skip("needs the system python3-gi")
    # A parent that starts a camera, reports the server's pid and port, then waits to be
    # SIGKILLed: no chance to clean up, so only the server's own stdin watch can help.
    script = (
        "import sys, time\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from sim_harness import MOVING\n"
        "from clients.sim import HttpCamera, RtspCamera, render_clip\n"
        f"cam = {STARTERS[kind]}\n"
        "print(cam.pid, cam.port, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        pid, port = (int(v) for v in parent.stdout.readline().split())
        assert port_open("127.0.0.1", port)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(5)
        deadline = time.monotonic() + 5
        while (_alive(pid) or port_open("127.0.0.1", port)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(pid)
        assert not port_open("127.0.0.1", port)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()


def _child(code: str) -> subprocess.Popen[bytes]:
    """A Python child that says it is ready (so its signal handlers are in place) and runs."""
    proc = subprocess.Popen(
        [sys.executable, "-c", f"{code}\nprint(flush=True)\nimport time\ntime.sleep(60)"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    proc.stdout.readline()
    proc.stdout.close()
    return proc


def test_reap_stops_every_process_at_once_and_kills_one_that_ignores_sigterm() -> None:
    # Each polite child takes 0.6 s to exit after SIGTERM: one after another, four would
    # take 2.4 s before the stubborn one's 1.5 s wait; terminated together, 0.6 s.
    slow_exit = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *_: (time.sleep(0.6), sys.exit(0)))"
    )
    polite = [_child(slow_exit) for _ in range(4)]
    stubborn = _child("import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)")
    start = time.monotonic()
    reap([*polite, stubborn], timeout=1.5)
    took = time.monotonic() - start
    assert [p.returncode for p in polite] == [0, 0, 0, 0]
    assert stubborn.returncode == -signal.SIGKILL
    assert took < 3.0  # about 2.1 s; one after another, 3.9 s
    assert all(p.stdin is not None and p.stdin.closed for p in [*polite, stubborn])
    assert not any(_alive(p.pid) for p in [*polite, stubborn])


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for init to reap it does not count)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"
