"""``motionhub serve`` and ``demo`` on a port already in use: a one-line error naming the
address, before any camera is opened."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.process_harness import finish, motionhub, write_config

STARTUP_FAILED = 3


@pytest.fixture
def taken() -> Iterator[int]:
    """A loopback port another program listens on."""
    with socket.create_server(("127.0.0.1", 0)) as other:
        yield other.getsockname()[1]


def test_serve_on_a_port_in_use_fails_before_opening_cameras(tmp_path: Path, taken: int) -> None:
    # The camera host: any connection to it would mean a camera was opened.
    with socket.create_server(("127.0.0.1", 0)) as camera_host:
        camera_host.setblocking(False)
        config = write_config(
            tmp_path / "motionhub.yml",
            {
                "server": {"host": "127.0.0.1", "port": taken},
                "storage": {"path": str(tmp_path / "data")},
                "cameras": [
                    {"id": "gate", "url": f"http://127.0.0.1:{camera_host.getsockname()[1]}/x"}
                ],
            },
        )
        proc = motionhub("serve", "--config", str(config))
        _, err = finish(proc)
        with pytest.raises(BlockingIOError):
            camera_host.accept()
    assert proc.returncode == STARTUP_FAILED, err[-3000:]
    assert f"cannot listen on 127.0.0.1:{taken}: address already in use" in err, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    assert "started 1 camera" not in err, err[-3000:]


def test_demo_on_a_port_in_use_fails_before_preparing_cameras(taken: int) -> None:
    proc = motionhub("demo", "--port", str(taken), "--cameras", "1")
    out, err = finish(proc)
    assert proc.returncode == STARTUP_FAILED, err[-3000:]
    refusal = f"motionhub demo: cannot listen on 127.0.0.1:{taken}: address already in use"
    assert err.strip() == refusal
    assert out == ""
