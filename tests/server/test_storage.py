"""SQLite storage on a real file: ordering, filters, paging, retention, snapshots, recovery."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest
from disk_harness import small_disk

import server.storage as storage_module
from server.config import CameraSettings, StorageSettings
from server.events import utc
from server.ids import UlidGenerator
from server.messages import Event
from server.storage import EventQuery, Storage, StorageInUse

T0 = 1_750_000_000.0


def make_event(
    gen: UlidGenerator, camera: str, ts: float, zones: list[str], end: bool = True
) -> Event:
    return Event(
        id=gen.new(ts),
        camera=camera,
        zones=zones,
        start=utc(ts),
        end=utc(ts + 3) if end else None,
        peak_score=0.25,
        boxes=[(0.1, 0.2, 0.3, 0.4)],
    )


async def open_storage(path: Path, **kw: object) -> Storage:
    s = Storage(StorageSettings(path=path, **kw))  # type: ignore[arg-type]
    await s.open()
    return s


async def save_with_start_snapshots(s: Storage, events: list[Event]) -> None:
    """Store ``events``, each with a start snapshot on disk."""
    frame = np.zeros((48, 64, 3), np.uint8)
    for ev in events:
        s.save_event(ev)
        assert await s.write_snapshot(ev, "start", frame, ev.boxes)


async def test_filters_paging_and_resume(tmp_path: Path) -> None:
    s = await open_storage(tmp_path)
    gen = UlidGenerator()
    events = [
        make_event(gen, "cam1" if i % 2 else "cam2", T0 + i * 10, ["door"] if i % 3 == 0 else [])
        for i in range(25)
    ]
    for ev in events:
        s.save_event(ev, ev.start.timestamp())
    # No flush: a read submitted after the writes sees them.
    page = await s.list_events(EventQuery(limit=10))
    assert [e.id for e in page] == [e.id for e in reversed(events)][:10]
    seen, cursor = [], None
    while True:
        page = await s.list_events(EventQuery(camera="cam1", limit=4, before=cursor))
        seen += page
        if len(page) < 4:
            break
        cursor = page[-1].id
    assert [e.id for e in seen] == [e.id for e in reversed(events) if e.camera == "cam1"]
    door = await s.list_events(EventQuery(zone="door", limit=100))
    assert {e.id for e in door} == {e.id for e in events if "door" in e.zones}
    window = await s.list_events(EventQuery(since=T0 + 50, until=T0 + 100, limit=100))
    assert sorted(e.id for e in window) == [e.id for e in events[5:10]]
    after = await s.events_after(events[20].id, {"cam2"})
    assert [e.id for e in after] == [e.id for e in events[21:] if e.camera == "cam2"]
    got = await s.get_event(events[3].id)
    assert got == events[3]
    await s.close()


async def test_open_events_are_closed_as_interrupted_on_next_open(tmp_path: Path) -> None:
    s = await open_storage(tmp_path)
    gen = UlidGenerator()
    ev = make_event(gen, "cam1", T0, [], end=False)
    s.save_event(ev, T0 + 7)
    await s.flush()
    # Simulate a killed process: the connection is dropped without closing the event, and
    # the directory's lock released, as the kernel does.
    s._db_thread.shutdown(wait=True)
    s.lock.release()
    s2 = await open_storage(tmp_path)
    got = await s2.get_event(ev.id)
    assert got is not None
    assert got.interrupted
    assert got.end is not None
    assert got.end.timestamp() == pytest.approx(T0 + 7)
    await s2.close()


async def test_retention_by_age_and_count_removes_snapshots(tmp_path: Path) -> None:
    s = await open_storage(tmp_path, retention_days=1, max_events=10)
    gen = UlidGenerator()
    now = T0 + 30 * 86400
    old = [make_event(gen, "cam1", now - 3 * 86400 + i, []) for i in range(3)]
    new = [make_event(gen, "cam1", now - 100 + i, []) for i in range(12)]
    await save_with_start_snapshots(s, old + new)
    assert await s.apply_retention(now) == 5
    left = await s.list_events(EventQuery(limit=100))
    assert [e.id for e in left] == [e.id for e in reversed(new)][:10]
    assert all(e.has_snapshot for e in left)
    files = sorted(p.name for p in (tmp_path / "snapshots" / "cam1").iterdir())
    assert files == sorted(f"{e.id}-start.jpg" for e in left)
    await s.close()


async def test_retention_keeps_an_open_event_until_it_has_ended(tmp_path: Path) -> None:
    s = await open_storage(tmp_path, retention_days=1, max_events=10)
    gen = UlidGenerator()
    now = T0 + 30 * 86400
    # A long event (a parked car) still open on one camera, past the age and the count...
    ongoing = make_event(gen, "cam1", now - 2 * 86400, [], end=False)
    # ...while another camera makes newer, ended ones.
    newer = [make_event(gen, "cam2", now - 100 + i, []) for i in range(12)]
    await save_with_start_snapshots(s, [ongoing, *newer])
    assert await s.apply_retention(now) == 2
    left = {e.id for e in await s.list_events(EventQuery(limit=100))}
    assert left == {ongoing.id} | {e.id for e in newer[2:]}
    assert s.snapshot_path("cam1", ongoing.id, "start").exists()
    # Once it has ended, the next pass takes it.
    s.save_event(ongoing.model_copy(update={"end": utc(now - 50)}))
    assert await s.apply_retention(now) == 1
    left = {e.id for e in await s.list_events(EventQuery(limit=100))}
    assert left == {e.id for e in newer[2:]}
    assert not s.snapshot_path("cam1", ongoing.id, "start").exists()
    await s.close()


async def test_snapshot_write_failure_is_reported_and_nothing_breaks(tmp_path: Path) -> None:
    s = await open_storage(tmp_path)
    gen = UlidGenerator()
    ev = make_event(gen, "cam1", T0, [])
    s.save_event(ev)
    kinds: list[str] = []
    s.on_error = kinds.append
    # A file where the camera's snapshot directory should be: a real write failure, as root too.
    (tmp_path / "snapshots").mkdir(exist_ok=True)
    (tmp_path / "snapshots" / "cam1").write_bytes(b"in the way")
    ok = await s.write_snapshot(ev, "start", np.zeros((8, 8, 3), np.uint8), [])
    assert not ok
    assert s.snapshot_error is not None
    assert "snapshot" in s.snapshot_error
    assert kinds == ["snapshot"]
    got = await s.get_event(ev.id)
    assert got is not None
    assert not got.has_snapshot
    await s.close()


async def test_a_snapshot_failure_stays_reported_while_other_cameras_write_theirs(
    tmp_path: Path,
) -> None:
    s = await open_storage(tmp_path)
    gen = UlidGenerator()
    blocked, fine = make_event(gen, "cam1", T0, []), make_event(gen, "cam2", T0, [])
    frame = np.zeros((8, 8, 3), np.uint8)
    # A file where cam1's snapshot directory should be: its writes fail for real, as root too.
    (tmp_path / "snapshots" / "cam1").write_bytes(b"in the way")
    assert not await s.write_snapshot(blocked, "start", frame, [])
    failed = s.snapshot_error
    assert failed is not None
    assert "cam1" in failed
    # cam2's snapshots say nothing about cam1's directory.
    assert await s.write_snapshot(fine, "start", frame, [])
    assert s.snapshot_error == failed
    assert not s.writable
    # Only a snapshot of cam1 written again, or cam1 deleted, ends it.
    (tmp_path / "snapshots" / "cam1").unlink()
    assert await s.write_snapshot(blocked, "start", frame, [])
    assert s.snapshot_error is None
    (tmp_path / "snapshots" / "cam1").rename(tmp_path / "cam1-away")
    (tmp_path / "snapshots" / "cam1").write_bytes(b"in the way")
    assert not await s.write_snapshot(blocked, "peak", frame, [])
    assert s.snapshot_error is not None
    s.health.camera_removed("cam1")
    assert s.snapshot_error is None
    await s.close()


async def test_cameras_persist_with_tombstones(tmp_path: Path) -> None:
    s = await open_storage(tmp_path)
    a = CameraSettings(id="a", url="rtsp://u:p@10.0.0.1/s")
    b = CameraSettings(id="b", url="rtsp://10.0.0.2/s", name="Bee")
    s.cameras.save(a, 0)
    s.cameras.save(b, 1)
    s.cameras.delete("a")
    await s.close()
    s2 = await open_storage(tmp_path)
    stored = await s2.cameras.load()
    assert stored.cameras == [b]
    assert stored.deleted == {"a"}
    await s2.close()


async def test_a_camera_stored_with_the_mask_as_its_password_gives_way_to_the_config_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Earlier versions stored a URL sent back with a new port and '***' as the password,
    # and a URL with a line break in it.
    s = await open_storage(tmp_path)
    lost = CameraSettings(id="a", url="rtsp://10.0.0.1/s").model_copy(
        update={"url": "rtsp://***:***@10.0.0.1:8554/s"}
    )
    s.cameras.save(lost, 0)
    broken = CameraSettings(id="b", url="rtsp://10.0.0.1/s").model_copy(
        update={"url": "rtsp://u:s3cret@10.0.0.1/s\r\nX-Injected: 1"}
    )
    s.cameras.save(broken, 1)
    await s.close()
    s2 = await open_storage(tmp_path)
    with caplog.at_level("WARNING", logger="server.storage"):
        stored = await s2.cameras.load()
    assert stored.cameras == []  # not a change: the config file's camera (and password) stays
    assert stored.deleted == set()
    await s2.close()
    # The log says which key and why, never the stored value.
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines
    assert "camera a are no longer valid (url: " in lines[0]
    assert "the mask the API shows" in lines[0]
    assert "camera b are no longer valid (url: " in lines[1]
    assert "control character" in lines[1]
    assert not any("s3cret" in line or "10.0.0.1" in line for line in lines)


async def test_database_is_wal_and_threads_end_on_close(tmp_path: Path) -> None:
    before = {t.name for t in threading.enumerate()}
    s = await open_storage(tmp_path)
    await s.close()
    mode = sqlite3.connect(tmp_path / "motionhub.db").execute("PRAGMA journal_mode").fetchone()
    assert mode[0] == "wal"
    leftover = {t.name for t in threading.enumerate()} - before
    assert not leftover


async def test_events_refused_by_a_full_disk_are_written_when_space_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage_module, "RETRY_SECONDS", 0.05)
    gen = UlidGenerator()
    with small_disk(tmp_path / "data", size="2m") as disk:
        s = await open_storage(disk.path)
        kinds: list[str] = []
        s.on_error = kinds.append
        ongoing = make_event(gen, "cam1", T0, ["door"], end=False)
        s.save_event(ongoing)
        await s.flush()
        disk.fill()
        # While the disk is full: the ongoing event ends, and a whole new one comes and goes.
        ended = ongoing.model_copy(update={"end": utc(T0 + 5)})
        brief = make_event(gen, "cam1", T0 + 10, [])
        s.save_event(ended)
        s.save_event(brief)
        await s.flush()
        assert s.db_error is not None
        assert "full" in s.db_error
        assert s.unsaved_events == 2
        assert kinds == ["db"]  # one outage, however many writes it refused
        task = asyncio.create_task(s.run())
        try:
            await asyncio.sleep(0.3)  # retries, refused too: still the same outage
            assert s.unsaved_events == 2
            assert kinds == ["db"]
            disk.free()
            for _ in range(200):
                if s.unsaved_events == 0:
                    break
                await asyncio.sleep(0.02)
            await s.flush()
            assert s.unsaved_events == 0, "held events were not written once space came back"
            assert s.db_error is None
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await s.close()
        again = await open_storage(disk.path)
        got = await again.get_event(ongoing.id)
        assert got is not None
        assert got.end == utc(T0 + 5)
        assert not got.interrupted  # its end was stored, not guessed on reopen
        assert await again.get_event(brief.id) is not None
        await again.close()


async def test_readiness_check_clears_its_own_findings_but_not_a_failed_write(
    tmp_path: Path,
) -> None:
    s = await open_storage(tmp_path)
    gen = UlidGenerator()
    ev = make_event(gen, "cam1", T0, [])
    s.save_event(ev)
    snapshots = tmp_path / "snapshots"
    # A file where the snapshot directory should be: the check fails for real, as root too.
    snapshots.rmdir()  # made, empty, when storage opened
    snapshots.write_bytes(b"in the way")
    assert not await s.check_writable()
    assert s.snapshot_error is not None
    assert str(snapshots) in s.snapshot_error
    snapshots.unlink()
    assert await s.check_writable()
    assert s.snapshot_error is None

    # A failed snapshot write is not cleared by a check that passes (a one-byte probe file
    # says little about room for a snapshot), only by a snapshot written again.
    (snapshots / "cam1").write_bytes(b"in the way")
    assert not await s.write_snapshot(ev, "start", np.zeros((8, 8, 3), np.uint8), [])
    written = s.snapshot_error
    assert written is not None
    assert await s.check_writable()
    assert s.snapshot_error == written
    # Nor by a check that fails: the write's error is the one shown until a write succeeds.
    (snapshots / ".probe").mkdir()
    assert not await s.check_writable()
    assert s.snapshot_error == written
    (snapshots / ".probe").rmdir()
    (snapshots / "cam1").unlink()
    assert await s.write_snapshot(ev, "start", np.zeros((8, 8, 3), np.uint8), [])
    assert s.snapshot_error is None

    # The database: a connection that went away fails the check; once it is back, the next
    # check clears the error (no write failed, so nothing else would).
    await s._db(s._c().close)
    assert not await s.check_writable()
    assert s.db_error is not None
    assert "database not writable" in s.db_error
    await s._db(s._open_sync)
    assert await s.check_writable()
    assert s.db_error is None
    await s.close()


async def test_readiness_check_keeps_a_failed_database_write_until_it_is_written(
    tmp_path: Path,
) -> None:
    s = await open_storage(tmp_path)
    gen = UlidGenerator()
    # The connection refuses writes (query_only): the write fails for real, as root too.
    await s._db(lambda: s._c().execute("PRAGMA query_only = ON"))
    ev = make_event(gen, "cam1", T0, [])
    s.save_event(ev)
    await s.flush()
    failed = s.db_error
    assert failed is not None
    assert s.unsaved_events == 1
    # The check fails while the write does (its own probe writes only a temporary table, so
    # it cannot tell), and keeps the write's error.
    assert not await s.check_writable()
    assert s.db_error == failed
    # The connection takes writes again: the check's probe passes, but until the held event
    # is written the outage goes on.
    await s._db(lambda: s._c().execute("PRAGMA query_only = OFF"))
    assert not await s.check_writable()
    assert s.db_error == failed
    s.save_event(make_event(gen, "cam1", T0 + 10, []))
    await s.flush()
    assert s.db_error is None
    assert s.unsaved_events == 0
    assert await s.get_event(ev.id) is not None
    await s.close()


async def test_a_snapshot_that_cannot_be_deleted_does_not_stop_retention(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    s = await open_storage(tmp_path, max_events=10)
    gen = UlidGenerator()
    events = [make_event(gen, "cam1", T0 + i, []) for i in range(12)]
    await save_with_start_snapshots(s, events)
    # A directory where the oldest event's peak snapshot would be: unlink() fails with
    # EISDIR, a real error other than "not found" (as a read-only share would give), as root.
    stuck = s.snapshot_path("cam1", events[0].id, "peak")
    stuck.mkdir()
    with caplog.at_level("WARNING", logger="server.storage"):
        assert await s.apply_retention(T0 + 100) == 2
    assert "cannot delete snapshot" in caplog.text
    left = await s.list_events(EventQuery(limit=100))
    assert [e.id for e in left] == [e.id for e in reversed(events[2:])]
    # The other doomed files went, the kept ones stayed.
    assert not s.snapshot_path("cam1", events[0].id, "start").exists()
    assert not s.snapshot_path("cam1", events[1].id, "start").exists()
    assert all(s.snapshot_path("cam1", e.id, "start").exists() for e in events[2:])
    # Deleting one event meets the same kind of failure the same way.
    in_the_way = s.snapshot_path("cam1", events[3].id, "peak")
    in_the_way.mkdir()
    assert await s.delete_event(events[3].id)
    assert await s.get_event(events[3].id) is None
    await s.close()


async def test_a_database_file_removed_under_the_server_is_reported_until_it_is_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    s = await open_storage(tmp_path / "data")
    assert await s.check_writable()
    db = tmp_path / "data" / "motionhub.db"
    aside = tmp_path / "aside.db"
    # Removed under the running server (a hard link keeps the file to put back).
    os.link(db, aside)
    db.unlink()
    with caplog.at_level("ERROR", logger="server.storage"):
        assert not await s.check_writable()
    assert s.db_error is not None
    assert "is gone" in s.db_error
    assert not s.writable
    assert "is gone" in caplog.text
    # Writes still succeed (into the unlinked file); they do not hide it.
    s.save_event(make_event(UlidGenerator(), "cam1", T0, []))
    await s.flush()
    assert s.db_error is not None
    os.link(aside, db)  # the same file is back
    assert await s.check_writable()
    assert s.db_error is None
    await s.close()


async def test_a_removed_storage_directory_is_not_made_again_beneath(tmp_path: Path) -> None:
    data = tmp_path / "data"
    s = await open_storage(data)
    gen = UlidGenerator()
    ev = make_event(gen, "cam1", T0, [])
    s.save_event(ev)
    shutil.rmtree(data)  # as when its disk is unmounted: the mount point is left empty
    assert not await s.write_snapshot(ev, "start", np.zeros((8, 8, 3), np.uint8), [])
    assert not await s.check_writable()
    assert not data.exists()  # neither the snapshot writer nor the check made it again
    assert s.snapshot_error is not None
    assert s.db_error is not None
    await s.close()


async def test_the_database_is_private_and_an_open_directory_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fresh = await open_storage(tmp_path / "fresh")
    assert (tmp_path / "fresh").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "fresh" / "motionhub.db").stat().st_mode & 0o777 == 0o600
    await fresh.close()
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    with caplog.at_level("WARNING", logger="server.storage"):
        s = await open_storage(shared)
    assert "open to other users (mode 755)" in caplog.text
    assert (shared / "motionhub.db").stat().st_mode & 0o777 == 0o600
    assert (shared / "snapshots").stat().st_mode & 0o777 == 0o700
    await s.close()


async def test_a_directory_in_use_is_refused_until_its_holder_closes(tmp_path: Path) -> None:
    first = await open_storage(tmp_path)
    second = Storage(StorageSettings(path=tmp_path))
    with pytest.raises(StorageInUse, match=rf"in use by another motionhub \(pid {os.getpid()}\)"):
        await second.open()
    await second.close()
    await first.close()
    again = await open_storage(tmp_path)
    await again.close()
