"""``motionhub serve`` stopped by Ctrl-C: a graceful stop, reported as one."""

from __future__ import annotations

import signal
import socket
from pathlib import Path

from tests.process_harness import listening_url, motionhub, poll, stop, write_config


def test_ctrl_c_stops_serve_with_status_130_and_no_abort_message(tmp_path: Path) -> None:
    # A camera host that accepts the connection and never answers, as a hung camera does.
    silent = socket.create_server(("127.0.0.1", 0))
    config = write_config(
        tmp_path / "motionhub.yml",
        {
            "server": {"host": "127.0.0.1", "port": 0},
            "storage": {"path": str(tmp_path / "data")},
            "cameras": [
                {
                    "id": "hung",
                    "url": f"rtsp://u:pw@127.0.0.1:{silent.getsockname()[1]}/x",
                    "open_timeout": 2,
                }
            ],
        },
    )
    proc = motionhub("serve", "--config", str(config))
    try:
        url, _ = listening_url(proc)
        poll(f"{url}healthz", lambda r: r.status_code == 200, proc=proc)
    finally:
        _, err = stop(proc, signal.SIGINT)
        silent.close()
    assert proc.returncode == 130, err[-3000:]
    assert "Aborted!" not in err
    assert "Application shutdown complete" in err
