"""The server as a user runs it: ``motionhub serve`` stopped with SIGTERM, ``motionhub demo``."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml
from process_harness import demo_url, first_line, listening_url, motionhub, poll, stop
from server_harness import free_port


def write_config(tmp_path: Path, url: str) -> tuple[Path, Path]:
    data = tmp_path / "data"
    config = tmp_path / "motionhub.yml"
    camera = {"id": "busy", "url": url, "events": {"min_frames": 2, "off_delay": 30}}
    config.write_text(
        yaml.safe_dump(
            {
                "server": {"host": "127.0.0.1", "port": 0},
                "storage": {"path": str(data)},
                "cameras": [camera],
            }
        )
    )
    return config, data


def test_sigterm_closes_open_events_and_flushes(tmp_path: Path, sim_cameras: Any) -> None:
    # Port 0: the server takes a free port itself and logs it, so no other program can take
    # it between this test choosing it and the server listening.
    config, data = write_config(tmp_path, sim_cameras.mjpeg_url_for("busy"))
    proc = motionhub("serve", "--config", str(config))
    try:
        base, startup = listening_url(proc)
        poll(
            f"{base}api/cameras/busy",
            lambda r: r.status_code == 200 and r.json()["event_active"],
            proc=proc,
        )
        events = httpx.get(f"{base}api/events").json()["events"]
        open_ids = [e["id"] for e in events if e["end"] is None]
        assert open_ids
        started = time.monotonic()
    finally:
        _, err = stop(proc)
    took = time.monotonic() - started
    assert proc.returncode in (0, -signal.SIGTERM), err[-3000:]
    assert took < 15, took
    assert "Traceback" not in startup + err, (startup + err)[-3000:]
    assert "stopped" in err
    db = sqlite3.connect(data / "motionhub.db")
    rows = db.execute('SELECT id, "end", interrupted FROM events').fetchall()
    assert rows
    assert all(end is not None for _, end, _ in rows), rows
    closed = {i: bool(interrupted) for i, _, interrupted in rows}
    assert all(closed[i] for i in open_ids), rows
    # The WAL was checkpointed and the files are consistent.
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


# SIGKILL mid-event and restart: tests/reliability/test_rel_sigkill.py.


def _demo_data(err: str) -> str:
    """The temporary data directory the demo's start-up line names (``data in DIR;``)."""
    return err.split("data in ", 1)[1].split(";", 1)[0]


def test_demo_serves_the_dashboard_and_cameras_come_online() -> None:
    # Port 0: the demo takes a free port itself, so no other program can take it between
    # this test choosing it and the demo listening.
    proc = motionhub("demo", "--port", "0", "--cameras", "2")
    try:
        url = demo_url(proc)
        page = httpx.get(url, timeout=10)  # the URL is shown once the server answers
        assert page.status_code == 200
        assert "text/html" in page.headers["content-type"]

        def all_online(r: httpx.Response) -> bool:
            cams = r.json()["cameras"]
            return len(cams) == 2 and all(c["status"] == "online" for c in cams)

        poll(f"{url}api/cameras", all_online, proc=proc)
    finally:
        _, err = stop(proc)
    assert "Traceback" not in err, err[-3000:]
    # SIGTERM is passed on after the clean-up: the temporary data directory is gone.
    assert proc.returncode == -signal.SIGTERM, (proc.returncode, err[-3000:])
    data = _demo_data(err)
    assert data.startswith(tempfile.gettempdir()), data
    assert not Path(data).exists(), f"{data} left behind"


def test_demo_stopped_with_ctrl_c_cleans_up_and_says_nothing_more() -> None:
    proc = motionhub("demo", "--port", "0", "--cameras", "1")
    try:
        poll(
            f"{demo_url(proc)}api/cameras",
            lambda r: r.status_code == 200,
            within=60,
            proc=proc,
        )
    finally:
        _, err = stop(proc, signal.SIGINT)
    assert proc.returncode == 130, (proc.returncode, err[-3000:])
    assert "Aborted" not in err, err[-3000:]
    data = _demo_data(err)
    assert not Path(data).exists(), f"{data} left behind"


def _port_and_next_held() -> tuple[int, socket.socket]:
    """A free port whose next port is bound here but not listening, as an outgoing
    connection's local port is: nothing answers there, yet no one else can bind it."""
    for _ in range(50):
        port = free_port()
        held = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            held.bind(("127.0.0.1", port + 1))
        except OSError:
            held.close()
            continue
        return port, held
    raise AssertionError("no free pair of adjacent ports")


def test_demo_serves_when_the_next_port_cannot_be_bound() -> None:
    port, held = _port_and_next_held()
    with held:
        proc = motionhub("demo", "--port", str(port), "--cameras", "1")
        try:
            assert f"http://127.0.0.1:{port}/" in first_line(proc)
            poll(
                f"http://127.0.0.1:{port}/api/cameras",
                lambda r: r.json()["cameras"][0]["status"] == "online",
                proc=proc,
            )
        finally:
            _, err = stop(proc)
    assert "Traceback" not in err, err[-3000:]


def test_no_leftover_children() -> None:
    # Both tests above reap their server; the demo's simulator exits with its parent.
    out = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(os.getpid())],
                         capture_output=True, text=True, check=False).stdout  # fmt: skip
    assert "motionhub" not in out, out
    assert "server.cli" not in out, out
