"""``motionhub sim`` run as a user runs it: a real process, real URLs, real signals."""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from click.testing import CliRunner
from sim_harness import decode_jpeg, rtsp_frames

from clients.sim.process import port_open
from clients.sim.rtsp import SYSTEM_PYTHON
from server.cli import main

pytestmark = pytest.mark.usefixtures("no_leftover_children")

CLI = [sys.executable, "-c", "from server.cli import main; main()", "sim"]


def children_of(pid: int) -> set[int]:
    pids: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        pids.update(int(p) for p in (task / "children").read_text().split())
    return pids


def read_lines(stream: object, count: int, timeout: float) -> list[str]:
    """``count`` lines from a text pipe, failing after ``timeout`` seconds."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stream:  # type: ignore[attr-defined]
            lines.put(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    out: list[str] = []
    deadline = time.monotonic() + timeout
    while len(out) < count:
        out.append(lines.get(timeout=max(0.1, deadline - time.monotonic())))
    return out


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_sim_prints_its_urls_serves_them_and_stops_cleanly(sig: signal.Signals) -> None:
    rtsp = Path(SYSTEM_PYTHON).exists()
    args = ["--cameras", "2", "--size", "320x180", "--fps", "10", "--seconds", "3"]
    args += ["--rtsp-port", "0", "--http-port", "0"]
    if not rtsp:
        args.append("--no-rtsp")
    proc = subprocess.Popen(CLI + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        urls = read_lines(proc.stdout, 6 if rtsp else 4, timeout=60)
        http_urls = [u for u in urls if u.startswith("http://")]
        assert [urlsplit(u).path for u in http_urls] == [
            "/cam1/mjpeg",
            "/cam1/snapshot.jpg",
            "/cam2/mjpeg",
            "/cam2/snapshot.jpg",
        ]
        # Check the streams once; the SIGINT run only checks the shutdown.
        for url in http_urls[1::2] if sig == signal.SIGTERM else []:
            img = decode_jpeg(httpx.get(url, timeout=5).content)
            assert img is not None
            assert img.shape == (180, 320, 3)
        if rtsp and sig == signal.SIGTERM:
            rtsp_urls = [u for u in urls if u.startswith("rtsp://")]
            assert [urlsplit(u).path for u in rtsp_urls] == ["/cam1", "/cam2"]
            assert rtsp_frames(rtsp_urls[1], 2)[0].shape == (180, 320)
        servers = children_of(proc.pid)
        assert len(servers) == (2 if rtsp else 1)
        ports = {urlsplit(u).port for u in urls}
        proc.send_signal(sig)
        assert proc.wait(15) == 0
        for port in ports:
            assert port is not None
            assert not port_open("127.0.0.1", port)
        for pid in servers:
            assert not Path(f"/proc/{pid}").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        stderr = proc.stderr.read() if proc.stderr else ""
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    assert "motionhub sim: stopping" in stderr


def test_sim_help_and_usage_errors() -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["sim", "--help"])
    assert result.exit_code == 0
    for option in ("--rtsp-port", "--http-port", "--size", "--video", "--light-switch-every"):
        assert option in result.output
    for bad, message in [
        (["--no-rtsp", "--no-http"], "nothing to serve"),
        (["--size", "640"], "WIDTHxHEIGHT"),
        (["--size", "641x360"], "even"),
        (["--rtsp-user", "admin"], "go together"),
    ]:
        result = runner.invoke(main, ["sim", *bad])
        assert result.exit_code == 2, result.output
        assert message in result.output
