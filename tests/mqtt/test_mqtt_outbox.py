"""The outbox on its own: order, persistence across reopen, the cap, damaged storage."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path

import pytest
from disk_harness import SmallDisk, small_disk

import server.mqtt.outbox as outbox_module
from server.mqtt.outbox import Outbox


async def _reopen(path: Path, cap: int = 100) -> Outbox:
    box = Outbox(path, cap)
    await box.open()
    return box


async def test_pending_messages_survive_a_reopen_in_order(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    box = await _reopen(path)
    sent = [box.put("t/events", f"m{i}".encode(), f"id{i}") for i in range(10)]
    box.ack(sent[0].seq)
    box.ack(sent[3].seq)
    await box.close()

    again = await _reopen(path)
    left = []
    seq = 0
    while (msg := again.first_from(seq)) is not None:
        left.append(msg)
        seq = msg.seq + 1
    assert [m.msg_id for m in left] == [f"id{i}" for i in (1, 2, 4, 5, 6, 7, 8, 9)]
    assert [m.payload for m in left] == [f"m{i}".encode() for i in (1, 2, 4, 5, 6, 7, 8, 9)]
    # New messages continue after the old ones.
    new = again.put("t/events", b"new", "idnew")
    assert new.seq > left[-1].seq
    await again.close()


async def test_messages_put_before_open_follow_the_stored_ones(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    box = await _reopen(path)
    box.put("t", b"old", "old")
    await box.close()
    early = Outbox(path, 100)
    early.put("t", b"early", "early")
    await early.open()
    assert [m.msg_id for m in (early.first_from(0), early.first_from(2))] == ["old", "early"]
    await early.close()
    again = await _reopen(path)
    assert len(again) == 2
    await again.close()


async def test_cap_drops_the_oldest_and_counts(tmp_path: Path) -> None:
    box = await _reopen(tmp_path / "outbox.db", cap=10)
    for i in range(25):
        box.put("t", b"x", f"id{i}")
    assert len(box) == 10
    assert box.dropped == 15
    first = box.first_from(0)
    assert first is not None
    assert first.msg_id == "id15"
    await box.close()
    again = await _reopen(tmp_path / "outbox.db", cap=10)
    assert len(again) == 10
    await again.close()


async def test_acknowledged_rows_leave_the_database(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    box = await _reopen(path)
    msgs = [box.put("t", b"x", f"id{i}") for i in range(5)]
    for m in msgs:
        box.ack(m.seq)
    assert await box.wait_empty(1.0)
    await box.flush()
    rows = sqlite3.connect(path).execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
    assert rows == 0
    await box.close()


async def test_a_damaged_database_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    path.write_bytes(b"this is not a database" * 100)
    box = await _reopen(path)
    assert box.persistent
    box.put("t", b"x", "id")
    await box.close()
    assert [n for n in os.listdir(tmp_path) if n.startswith("outbox.db.corrupt-")]
    again = await _reopen(path)
    assert len(again) == 1
    await again.close()


async def test_unwritable_storage_keeps_messages_in_memory(tmp_path: Path) -> None:
    # As root a read-only tmpfs of the test's own; otherwise permissions (root ignores them).
    ro = tmp_path / "ro"
    disk = SmallDisk(ro)
    try:
        if disk.real:
            disk.remount("ro")
        else:
            ro.chmod(0o500)
        box = await _reopen(ro / "outbox.db")
        assert not box.persistent
        assert box.write_errors == 1
        box.put("t", b"x", "id")
        assert len(box) == 1
        await box.close()
    finally:
        if not disk.real:
            ro.chmod(0o700)
        disk.close()


async def test_a_full_disk_keeps_messages_and_writes_them_when_space_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbox_module, "RETRY_SECONDS", 0.05)
    blob = b"p" * 20_000
    with small_disk(tmp_path / "small", size="1m") as disk:
        path = disk.path / "outbox.db"
        box = await _reopen(path, cap=1000)
        before = [box.put("t", blob, f"before{i}") for i in range(3)]
        await box.flush()
        assert box.persistent
        disk.fill()
        during = [box.put("t", blob, f"during{i}") for i in range(10)]
        await box.flush()
        assert not box.persistent
        assert box.write_errors >= 1
        assert len(box) == 13  # nothing lost from the queue
        # Acknowledged while the disk is full: one already on disk, one never written.
        box.ack(before[0].seq)
        box.ack(during[0].seq)
        disk.free()
        for _ in range(200):
            if box.persistent:
                break
            await asyncio.sleep(0.02)
        assert box.persistent, "the outbox did not write again once space came back"
        await box.close()
        again = await _reopen(path, cap=1000)
        expected = [m.msg_id for m in before[1:] + during[1:]]
        assert _ids(again) == expected
        await again.close()


def _ids(box: Outbox) -> list[str]:
    out: list[str] = []
    seq = 0
    while (msg := box.first_from(seq)) is not None:
        out.append(msg.msg_id)
        seq = msg.seq + 1
    return out


async def test_a_file_in_place_of_the_directory_keeps_messages_in_memory(tmp_path: Path) -> None:
    # Works for root too: a path under a regular file can never be created.
    blocker = tmp_path / "file"
    blocker.write_text("x")
    box = await _reopen(blocker / "outbox.db")
    assert not box.persistent
    assert box.write_errors == 1
    msg = box.put("t", b"x", "id")
    assert box.first_from(0) == msg
    await box.close()
