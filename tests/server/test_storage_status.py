"""Storage outages as the running server reports them: `/api/status` and `/metrics` while
the database's disk is full for real (a tmpfs of the test's own), and `/readyz` answering
from the storage's health watch."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from disk_harness import small_disk
from rel_harness import eventually, metric
from server_harness import Running, serve, settings_for

import server.storage as storage_module
from server.events import utc
from server.messages import Event

T0 = 1_750_000_000.0


def _save(srv: Running, ts: float) -> Event:
    ev = Event(id=srv.core.ids.new(ts), camera="c", start=utc(ts), end=utc(ts + 1), peak_score=0.1)
    srv.core.storage.save_event(ev)
    return ev


async def _storage_status(srv: Running) -> dict[str, Any]:
    status: dict[str, Any] = (await srv.client.get("/api/status")).json()["storage"]
    return status


async def _db_errors(srv: Running) -> float:
    return metric(await srv.metrics(), "motionhub_storage_errors_total", kind="db")


async def test_one_disk_outage_counts_one_db_error_however_often_it_is_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage_module, "RETRY_SECONDS", 0.05)
    with small_disk(tmp_path / "data", size="2m") as disk:
        async with serve(settings_for(disk.path, [])) as srv:
            storage = srv.core.storage
            _save(srv, T0)
            await storage.flush()
            assert await _db_errors(srv) == 0
            disk.fill()
            _save(srv, T0 + 1)
            _save(srv, T0 + 2)
            await storage.flush()
            assert storage.unsaved_events == 2
            # Twenty retries or so, every one refused by the full disk: still one outage.
            await asyncio.sleep(1.0)
            assert storage.unsaved_events == 2
            _save(srv, T0 + 3)  # new data refused during the same outage
            await asyncio.sleep(0.3)
            await storage.flush()
            status = await _storage_status(srv)
            assert status["unsaved_events"] == 3
            assert "full" in status["db_error"]
            assert await _db_errors(srv) == 1

            disk.free()

            async def written() -> bool:
                return storage.unsaved_events == 0 and storage.db_error is None

            await eventually(written, 5.0, "held events written once space came back")
            assert await _db_errors(srv) == 1
            # A second outage is counted again, once.
            disk.fill()
            _save(srv, T0 + 4)
            await asyncio.sleep(0.5)
            await storage.flush()
            assert storage.unsaved_events == 1
            assert await _db_errors(srv) == 2
            disk.free()
            await eventually(written, 5.0, "the second outage's event written")


async def test_events_given_up_on_past_the_held_limit_are_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage_module, "MAX_UNSAVED_EVENTS", 3)
    monkeypatch.setattr(storage_module, "RETRY_SECONDS", 0.05)
    with small_disk(tmp_path / "data", size="2m") as disk:
        async with serve(settings_for(disk.path, [])) as srv:
            storage = srv.core.storage
            status = await _storage_status(srv)
            assert status["lost_events"] == 0
            assert metric(await srv.metrics(), "motionhub_storage_lost_events_total") == 0
            disk.fill()
            saved = [_save(srv, T0 + i) for i in range(5)]
            await storage.flush()
            status = await _storage_status(srv)
            # Three held (the newest), the two oldest given up on.
            assert status["unsaved_events"] == 3
            assert status["lost_events"] == 2
            assert metric(await srv.metrics(), "motionhub_storage_lost_events_total") == 2
            disk.free()

            async def written() -> bool:
                return storage.unsaved_events == 0

            await eventually(written, 5.0, "held events written once space came back")
            status = await _storage_status(srv)
            assert status["lost_events"] == 2  # a count since start, not of the outage
            assert await storage.get_event(saved[0].id) is None
            assert await storage.get_event(saved[-1].id) is not None


async def test_readyz_answers_from_the_health_watch_without_touching_the_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage_module, "RETRY_SECONDS", 60.0)
    async with serve(settings_for(tmp_path / "data", [])) as srv:
        snapshots = tmp_path / "data" / "snapshots"
        assert (await srv.client.get("/readyz")).status_code == 200
        # A health check writes and removes a probe file in the snapshot directory, which
        # moves the directory's modification time: set far back, it shows whether one ran.
        os.utime(snapshots, (0, 0))
        for _ in range(20):
            ready = await srv.client.get("/readyz")
            assert ready.status_code == 200
            assert ready.json()["storage"] is True
        assert snapshots.stat().st_mtime == 0
        # Once the last check is older than the interval, the next request checks again.
        monkeypatch.setattr(storage_module, "RETRY_SECONDS", 0.0)
        assert (await srv.client.get("/readyz")).status_code == 200
        assert snapshots.stat().st_mtime > 0


async def test_readyz_shows_a_storage_directory_gone_within_one_watch_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    interval = 0.5
    monkeypatch.setattr(storage_module, "RETRY_SECONDS", interval)
    data = tmp_path / "data"
    async with serve(settings_for(data, [])) as srv:
        assert (await srv.client.get("/readyz")).status_code == 200
        shutil.rmtree(data)  # as when its disk is unmounted

        async def not_ready() -> bool:
            ready = await srv.client.get("/readyz")
            return ready.status_code == 503 and ready.json()["storage"] is False

        # One interval, and some slack for a busy machine.
        took = await eventually(not_ready, interval + 1.0, "/readyz saying storage is gone")
        assert took <= interval + 1.0
        status = await _storage_status(srv)
        assert status["writable"] is False
        assert "is gone" in status["db_error"]
        assert not data.exists()  # the checks did not make it again beneath


async def test_an_unpolled_server_writes_no_probes_but_still_sees_its_database_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage_module, "RETRY_SECONDS", 0.05)
    data = tmp_path / "data"
    async with serve(settings_for(data, [])) as srv:
        snapshots = data / "snapshots"
        os.utime(snapshots, (0, 0))
        await asyncio.sleep(0.5)  # ten rounds of the storage task, nobody asking /readyz
        assert snapshots.stat().st_mtime == 0  # no probe file written and removed
        (data / "motionhub.db").rename(data / "moved.db")

        async def db_gone() -> bool:
            return "is gone" in ((await _storage_status(srv))["db_error"] or "")

        await eventually(db_gone, 2.0, "the storage task noticing the database file gone")
