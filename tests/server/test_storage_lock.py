"""One server per data directory: a second ``motionhub serve`` on a ``storage.path`` in use
stops at start-up with one line naming the directory and the holder's pid, and a killed
holder does not block a restart."""

from __future__ import annotations

import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.process_harness import (
    demo_url,
    finish,
    listening_url,
    motionhub,
    poll,
    stop,
    write_config,
)

STARTUP_FAILED = 3


def _config(path: Path, data: Path, camera_url: str) -> Path:
    return write_config(
        path,
        {
            "server": {"host": "127.0.0.1", "port": 0},
            "storage": {"path": str(data)},
            "cameras": [{"id": "busy", "url": camera_url, "events": {"off_delay": 30}}],
        },
    )


def _serve(path: Path, data: Path, camera_url: str) -> subprocess.Popen[str]:
    """``motionhub serve`` on a port it picks (see :func:`listening_url`), with storage
    ``data`` and one camera at ``camera_url``."""
    return motionhub("serve", "--config", str(_config(path, data, camera_url)))


def _open_event(r: httpx.Response) -> bool:
    return r.status_code == 200 and any(e["end"] is None for e in r.json()["events"])


def test_a_second_server_on_the_same_storage_path_stops_and_a_killed_one_does_not_block(
    tmp_path: Path, sim_cameras: Any
) -> None:
    data = tmp_path / "data"
    first = _serve(tmp_path / "first.yml", data, sim_cameras.mjpeg_url_for("busy"))
    try:
        events_url = f"{listening_url(first)[0]}api/events"
        (recording,) = poll(events_url, _open_event, within=40, proc=first).json()["events"]

        # The camera host of the second server: any connection would mean it opened a camera.
        with socket.create_server(("127.0.0.1", 0)) as camera_host:
            camera_host.setblocking(False)
            camera = f"http://127.0.0.1:{camera_host.getsockname()[1]}/x"
            second = _serve(tmp_path / "second.yml", data, camera)
            _, err = finish(second)
            with pytest.raises(BlockingIOError):
                camera_host.accept()
        assert second.returncode == STARTUP_FAILED, err[-3000:]
        refusal = (
            f"storage directory {data} is in use by another motionhub (pid {first.pid}); "
            "stop it or use another storage.path"
        )
        assert refusal in err, err[-3000:]
        assert "Traceback" not in err, err[-3000:]

        # The first goes on recording: its event is still open (the second did not close it
        # as interrupted) and it keeps answering.
        assert first.poll() is None
        r = poll(events_url, _open_event, proc=first)
        assert [e["id"] for e in r.json()["events"] if e["end"] is None] == [recording["id"]]
    finally:
        first.kill()
        first.communicate(timeout=30)
    assert first.returncode == -signal.SIGKILL

    # The kernel released the killed server's lock: a new server starts on the directory.
    third = _serve(tmp_path / "third.yml", data, sim_cameras.mjpeg_url_for("busy"))
    started = ""
    try:
        url, started = listening_url(third)
        poll(
            f"{url}api/events",
            lambda r: (
                r.status_code == 200
                and any(e["id"] == recording["id"] and e["interrupted"] for e in r.json()["events"])
            ),
            within=40,
            proc=third,
        )
    finally:
        _, err = stop(third)
    assert "in use by another motionhub" not in started + err, (started + err)[-3000:]


def test_a_second_demo_on_the_same_data_directory_names_its_data_option(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = motionhub("demo", "--port", "0", "--cameras", "1", "--data", str(data))
    try:
        poll(f"{demo_url(first)}api/events", lambda r: r.status_code == 200, proc=first)
        second = motionhub("demo", "--port", "0", "--cameras", "1", "--data", str(data))
        out, err = finish(second)
    finally:
        stop(first)
    assert second.returncode == STARTUP_FAILED, err[-3000:]
    # The demo's user gave --data: the demo has no storage.path to change.
    refusal = (
        f"motionhub demo: storage directory {data} is in use by another motionhub "
        f"(pid {first.pid}); stop it or use another --data"
    )
    assert err.strip() == refusal, err[-3000:]
    assert out == ""
