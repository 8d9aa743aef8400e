"""``motionhub serve`` SIGKILLed while an event is open, then started again.

After the kill the data directory is inspected as it was left: the database passes SQLite's
integrity check and every snapshot on disk is a whole JPEG. After the restart the open event
is closed, marked ``interrupted``, ends at the last time it was seen alive (not at its
start, not at the restart) and keeps its snapshot byte for byte; a camera change made
through the API just before the kill is still there.
"""

from __future__ import annotations

import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from process_harness import listening_url, motionhub, poll, stop, write_config
from rel_harness import ADMIN

from server.pipeline import HEARTBEAT

AUTH = {"Authorization": f"Bearer {ADMIN}"}


def whole_jpeg(data: bytes) -> bool:
    """Starts and ends like a JPEG and decodes to an image."""
    if not (data.startswith(b"\xff\xd8") and data.endswith(b"\xff\xd9")):
        return False
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return image is not None and image.size > 0


@pytest.mark.slow
def test_sigkill_mid_event_then_restart(tmp_path: Path, sim_cameras: Any) -> None:
    data = tmp_path / "data"
    config = write_config(
        tmp_path / "motionhub.yml",
        {
            "server": {
                "port": 0,  # a free one, taken by the server itself; each run logs it
                "auth": {"tokens": [{"token": ADMIN, "role": "admin"}]},
            },
            "storage": {"path": str(data)},
            "cameras": [
                # Moving all the time: its event opens and stays open.
                {
                    "id": "busy",
                    "url": sim_cameras.mjpeg_url_for("busy"),
                    "events": {"min_frames": 2, "off_delay": 30},
                },
            ],
        },
    )

    def open_with_snapshot(r: httpx.Response) -> bool:
        return r.status_code == 200 and any(
            e["has_snapshot"] and e["end"] is None for e in r.json()["events"]
        )

    proc = motionhub("serve", "--config", str(config))
    try:
        base = listening_url(proc)[0].rstrip("/")
        r = poll(f"{base}/api/events", open_with_snapshot, within=40, proc=proc, headers=AUTH)
        (open_event,) = r.json()["events"]
        renamed = httpx.patch(f"{base}/api/cameras/busy", json={"name": "Front door"}, headers=AUTH)
        assert renamed.status_code == 200
        # Live long enough for at least one last-seen heartbeat after the start.
        time.sleep(max(0.0, _ts(open_event["start"]) + HEARTBEAT + 1 - time.time()))
        snapshot = httpx.get(f"{base}/api/events/{open_event['id']}/snapshot.jpg", headers=AUTH)
        assert snapshot.status_code == 200
        killed_at = time.time()
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    # The data directory exactly as the kill left it.
    db = sqlite3.connect(data / "motionhub.db")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    open_rows = db.execute('SELECT id FROM events WHERE "end" IS NULL').fetchall()
    assert (open_event["id"],) in open_rows
    db.close()
    files = sorted((data / "snapshots").rglob("*.jpg"))
    assert files
    assert all(whole_jpeg(f.read_bytes()) for f in files), files

    proc = motionhub("serve", "--config", str(config))
    startup = ""
    try:
        base, startup = listening_url(proc)
        base = base.rstrip("/")
        r = poll(f"{base}/api/events/{open_event['id']}", lambda r: r.status_code == 200,
                 proc=proc, headers=AUTH)  # fmt: skip
        event = r.json()
        camera = httpx.get(f"{base}/api/cameras/busy", headers=AUTH).json()
        again = httpx.get(f"{base}/api/events/{open_event['id']}/snapshot.jpg", headers=AUTH)
        status = httpx.get(f"{base}/api/status", headers=AUTH).json()
    finally:
        _, err = stop(proc)
    assert proc.returncode in (0, -signal.SIGTERM), err[-3000:]
    err = startup + err
    assert "Traceback" not in err, err[-3000:]
    assert "closed 1 event(s) left open by an unclean stop" in err

    assert event["interrupted"] is True
    assert event["end"] is not None
    start, end = (_ts(event[k]) for k in ("start", "end"))
    # Closed at the last time it was seen alive: after its start, at most one heartbeat
    # (plus a frame) before the kill, and never after it.
    assert start < end <= killed_at
    assert end >= killed_at - HEARTBEAT - 1.5
    assert again.status_code == 200
    assert again.content == snapshot.content
    assert whole_jpeg(again.content)
    assert camera["name"] == "Front door"
    assert status["storage"]["writable"] is True
    # Storage stays consistent through the stop after the restart too.
    db = sqlite3.connect(data / "motionhub.db")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert db.execute('SELECT COUNT(*) FROM events WHERE "end" IS NULL').fetchone()[0] == 0
    db.close()
    assert not list((data / "snapshots").rglob("*.tmp"))


def _ts(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
