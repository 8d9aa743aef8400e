"""The snapshot directory turns unwritable, then the disk fills up, then space comes back.

As root the test mounts a small tmpfs of its own on the snapshot directory and makes it
read-only (``EROFS``) and then full (``ENOSPC``) for real. Anyone else cannot mount: the
directory is made read-only with its permissions instead, and the full disk is the one
mock (see :class:`SnapshotDisk`).

Through all of it: each failure is named in ``/api/status``, the log and the metrics,
``/readyz`` says storage is not ready, detection and event delivery (WebSocket and MQTT)
carry on, events are stored without their snapshot, and the snapshots stored before are
untouched. When space comes back, snapshots are stored again and the error clears.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from broker_harness import Recorder
from disk_harness import SmallDisk
from rel_harness import VIEWER, Running, make_settings, metric, serve
from websockets.asyncio.client import connect

from clients.sim import HttpCamera, SceneSpec
from server.messages import EventEndMessage, EventStartMessage
from server.snapshot_store import SnapshotStore

# 2 s of motion, 2 s still: an event every 4 s.
SPEC = SceneSpec(width=320, height=240, fps=10, seed=5, objects=3, active_seconds=2,
                 still_seconds=2, loop_seconds=8)  # fmt: skip
CAMERA = "yard"


class SnapshotDisk:
    """The snapshot directory, made unwritable or full on request."""

    def __init__(self, path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.path = path
        self._monkeypatch = monkeypatch
        self._disk = SmallDisk(path)
        self.real = self._disk.real  # whether faults are caused for real (a tmpfs of our own)

    def read_only(self) -> None:
        self._remount("ro", 0o500)

    def writable(self) -> None:
        self._remount("rw", 0o700)

    def _remount(self, mode: str, dir_mode: int) -> None:
        if self.real:
            self._disk.remount(mode)
        else:
            # Not root: permissions do it (root would ignore them, hence the mount above).
            for d in [self.path, *(p for p in self.path.iterdir() if p.is_dir())]:
                d.chmod(dir_mode)

    def fill(self) -> None:
        if self.real:
            self._disk.fill()
            return
        # Without root no filesystem of our own can be made full, and filling a shared
        # disk is not an option: this is the one failure that is mocked here.
        original = SnapshotStore._write_jpeg_sync

        def full(self: SnapshotStore, path: Path, *args: Any) -> None:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

        self._monkeypatch.setattr(SnapshotStore, "_write_jpeg_sync", full)
        self._original = original

    def free(self) -> None:
        if self.real:
            self._disk.free()
        else:
            self._monkeypatch.setattr(SnapshotStore, "_write_jpeg_sync", self._original)

    def close(self) -> None:
        self._disk.close()


@pytest.fixture
def disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SnapshotDisk]:
    d = SnapshotDisk(tmp_path / "data" / "snapshots", monkeypatch)
    try:
        yield d
    finally:
        d.close()


def stored_snapshots(root: Path) -> dict[str, str]:
    """Every snapshot file under ``root`` with the SHA-256 of its content."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*.jpg")
    }


async def next_event(srv: Running, since: int) -> tuple[EventStartMessage, EventEndMessage]:
    """The next event that starts and ends after message index ``since``."""
    start = await srv.wait_for(EventStartMessage, within=15, after=since)
    end = await srv.wait_for(EventEndMessage, lambda m: m.event.id == start.event.id, 15, since)
    return start, end


@pytest.mark.slow
async def test_unwritable_then_full_snapshot_storage(
    tmp_path: Path,
    disk: SnapshotDisk,
    mosquitto: Any,
    mqtt_prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    with HttpCamera({CAMERA: SPEC}) as cam:
        camera = {
            "id": CAMERA,
            "url": cam.mjpeg_url_for(CAMERA),
            "events": {"min_frames": 2, "off_delay": 0.5},
        }
        mqtt = {"url": mosquitto.url, "topic_prefix": mqtt_prefix, "discovery": {"enabled": False}}
        settings = make_settings(tmp_path / "data", [camera], mqtt=mqtt)
        async with (
            serve(settings) as srv,
            Recorder(mosquitto.url, f"{mqtt_prefix}/events") as mq,
        ):
            ws = await connect(
                f"ws://127.0.0.1:{srv.port}/ws",
                subprotocols=["motionhub", f"bearer.{VIEWER}"],  # type: ignore[list-item]
            )
            ws_events: list[tuple[str, str]] = []
            ws_task = asyncio.create_task(_read_ws(ws, ws_events))

            # 1. Healthy: an event with its snapshot.
            _, end = await next_event(srv, 0)
            assert end.event.has_snapshot
            before = stored_snapshots(disk.path)
            assert before

            async def fault_phase(expected: str) -> str:
                since = len(srv.messages)
                processed = srv.core.pipeline(CAMERA).processed  # type: ignore[union-attr]
                _, end = await next_event(srv, since)
                assert not end.event.has_snapshot
                status = (await srv.client.get("/api/status")).json()["storage"]
                assert status["writable"] is False
                assert status["db_error"] is None
                assert expected in status["snapshot_error"], status
                assert str(disk.path) in status["snapshot_error"]
                ready = await srv.client.get("/readyz")
                assert ready.status_code == 503
                assert ready.json()["storage"] is False
                assert ready.json()["cameras"] is True
                # Stored, without a snapshot; detection went on all along.
                got = (await srv.client.get(f"/api/events/{end.event.id}")).json()
                assert got["end"] is not None
                assert got["has_snapshot"] is False
                assert srv.core.pipeline(CAMERA).processed > processed + 20  # type: ignore[union-attr]
                cam_state = (await srv.client.get(f"/api/cameras/{CAMERA}")).json()
                assert cam_state["status"] == "online"
                # Delivered to both front ends.
                await _wait(lambda: (end.event.id, "end") in ws_events, "WebSocket event_end")
                await _wait(lambda: _mqtt_has(mq, end.event.id, "end"), "MQTT event end")
                return str(end.event.id)

            # 2. Unwritable.
            disk.read_only()
            errors = metric(await srv.metrics(), "motionhub_storage_errors_total", kind="snapshot")
            ro_event = await fault_phase(
                "Read-only file system" if disk.real else "Permission denied"
            )
            text = await srv.metrics()
            assert metric(text, "motionhub_storage_errors_total", kind="snapshot") > errors
            assert metric(text, "motionhub_storage_writable") == 0
            assert metric(text, "motionhub_storage_errors_total", kind="db") == 0
            disk.writable()

            # 3. Full.
            disk.fill()
            errors = metric(await srv.metrics(), "motionhub_storage_errors_total", kind="snapshot")
            full_event = await fault_phase("No space left on device")
            assert (
                metric(await srv.metrics(), "motionhub_storage_errors_total", kind="snapshot")
                > errors
            )

            # 4. Space again: snapshots are stored and the error clears.
            disk.free()
            _, end = await next_event(srv, len(srv.messages))
            assert end.event.has_snapshot
            status = (await srv.client.get("/api/status")).json()["storage"]
            assert status == {**status, "writable": True, "snapshot_error": None}
            assert (await srv.client.get("/readyz")).status_code == 200
            assert metric(await srv.metrics(), "motionhub_storage_writable") == 1
            ws_task.cancel()
            await ws.close()

    # Nothing stored before the faults was damaged, and no partial file was left behind.
    after = stored_snapshots(disk.path)
    assert {k: after[k] for k in before} == before
    assert not list(disk.path.rglob("*.tmp"))
    assert not any(ro_event in name or full_event in name for name in after)
    log = caplog.text
    assert "cannot write snapshot to" in log
    assert "No space left on device" in log


async def _wait(check: Any, what: str, within: float = 10.0) -> None:
    for _ in range(int(within / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {what} within {within} s")


def _mqtt_has(rec: Recorder, event_id: str, kind: str) -> bool:
    for m in rec.messages:
        body = json.loads(m.payload)
        if body["event"]["id"] == event_id and body["type"] == kind:
            return True
    return False


async def _read_ws(ws: Any, into: list[tuple[str, str]]) -> None:
    async for raw in ws:
        msg = json.loads(raw)
        if msg["type"] in ("event_start", "event_end"):
            into.append((msg["event"]["id"], msg["type"].removeprefix("event_")))
