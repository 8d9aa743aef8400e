"""Storage: events and the live camera list in SQLite (WAL), with their snapshot files
(:mod:`server.snapshot_store`), health (:mod:`server.storage_health`) and the cameras changed
through the API (:mod:`server.camera_store`) behind one facade.

Threads: one dedicated database thread owns the only SQLite connection, so writes happen
in the order they were submitted and a read always sees every write submitted before it.
Writers do not wait (:meth:`Storage.save_event` returns at once); readers await. JPEG
encoding and file writes use a second thread (the snapshot store's), so a slow disk or a
large frame never holds up the database. Nothing here ever runs on the event loop.

Layout under ``storage.path``::

    motionhub.lock                see server.storage_lock
    motionhub.db                  events, cameras (WAL mode)
    snapshots/                    see server.snapshot_store

When the database cannot be written (disk full, read-only, gone), the events that failed
are kept, each in its latest state (up to :data:`MAX_UNSAVED_EVENTS`), and written with the
next write, every :data:`RETRY_SECONDS` and on close, so an outage loses none of them once
the disk is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from server import camera_store
from server.camera_store import CameraStore, StoredCameras
from server.config import StorageSettings
from server.events import utc
from server.messages import Box, Event
from server.snapshot_store import SnapshotKind, SnapshotStore
from server.storage_health import StorageHealth
from server.storage_lock import DirectoryLock, StorageError, StorageInUse, check_not_in_use

__all__ = [
    "EventQuery",
    "SnapshotKind",
    "Storage",
    "StorageError",
    "StorageInUse",
    "StoredCameras",
    "check_not_in_use",
]

log = logging.getLogger(__name__)

T = TypeVar("T")
RETENTION_INTERVAL = 600.0
RETRY_SECONDS = 5.0
"""How often events the database refused are written again and the storage's health is
checked (:meth:`Storage.check_writable`); :meth:`Storage.ready` answers from a check this
recent."""
MAX_UNSAVED_EVENTS = 10_000
"""Events kept for a database that cannot be written; past this the oldest are dropped."""

_UPSERT_EVENT = (
    'INSERT INTO events (id, camera, start, "end", last_seen, peak_score, zones, boxes,'
    " interrupted) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ' ON CONFLICT(id) DO UPDATE SET "end" = excluded."end", last_seen = excluded.last_seen,'
    " peak_score = excluded.peak_score, zones = excluded.zones, boxes = excluded.boxes,"
    " interrupted = excluded.interrupted"
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,
    camera TEXT NOT NULL,
    start REAL NOT NULL,
    "end" REAL,
    last_seen REAL NOT NULL,
    peak_score REAL NOT NULL,
    zones TEXT NOT NULL,
    boxes TEXT NOT NULL,
    snap_start INTEGER NOT NULL DEFAULT 0,
    snap_peak INTEGER NOT NULL DEFAULT 0,
    interrupted INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS events_camera_id ON events (camera, id);
CREATE INDEX IF NOT EXISTS events_start ON events (start);
"""


_SELECT = (
    'SELECT id, camera, start, "end", peak_score, zones, boxes, snap_start, snap_peak,'
    " interrupted FROM events"
)
# Every query is built from these fixed fragments; values always go in as parameters.


@dataclass(frozen=True)
class EventQuery:
    """Filters for :meth:`Storage.list_events`; results are newest first."""

    camera: str | None = None
    zone: str | None = None
    since: float | None = None
    until: float | None = None
    before: str | None = None
    """Cursor: only ids strictly smaller (older) than this."""
    limit: int = 50


def _event_row(ev: Event, last_seen: float) -> tuple[Any, ...]:
    return (
        ev.id,
        ev.camera,
        ev.start.timestamp(),
        ev.end.timestamp() if ev.end else None,
        last_seen,
        ev.peak_score,
        json.dumps(ev.zones),
        json.dumps([list(b) for b in ev.boxes]),
        int(ev.interrupted),
    )


async def _nothing_removed(removed: list[tuple[str, str]]) -> None:
    """The default :attr:`Storage.on_removed`: nobody to tell."""


class Storage:
    """The data directory; see the module docstring for threads and layout."""

    def __init__(self, settings: StorageSettings) -> None:
        self.settings = settings
        self.root = Path(settings.path)
        self.db_path = self.root / "motionhub.db"
        self.lock = DirectoryLock(self.root)
        """The data directory's lock (:mod:`server.storage_lock`), held while open."""
        self.snapshot_dir = self.root / "snapshots"
        self._db_thread = ThreadPoolExecutor(1, thread_name_prefix="motionhub-db")
        self.snapshots = SnapshotStore(self.snapshot_dir, settings.snapshot_quality)
        self._conn: sqlite3.Connection | None = None
        self._pending: set[asyncio.Future[None]] = set()
        self._closed = False
        self.cameras = CameraStore(self._c, self._db, self._submit)
        """The cameras changed through the API (:mod:`server.camera_store`)."""
        self.health = StorageHealth(
            self.db_path,
            self.snapshots,
            lambda: self._db(self._check_db_sync),
            # Not self.on_error itself: the core sets that attribute after construction.
            lambda kind: self.on_error(kind),  # noqa: PLW0108
        )
        self.unsaved_events = 0
        """Events waiting to be written again after a database write failed."""
        self.lost_events = 0
        """Events given up on: more than MAX_UNSAVED_EVENTS waited for the database."""
        self._unsaved: OrderedDict[str, tuple[Event, float]] = OrderedDict()
        """By event id, its latest state and last-seen time (the database thread's own)."""
        self.on_error: Callable[[str], None] = lambda kind: None
        """Called on the loop (metrics) with ``"snapshot"`` after each snapshot that could not
        be written, and with ``"db"`` once per database outage, when writes start failing:
        not again for the held events written again (and refused) during the same outage."""
        self.removed_events = 0
        """Events deleted so far (the API's delete, retention). Counted on the database thread
        with the deletes, so :meth:`count_events_and_removed` sees both at one moment."""
        self.on_removed: Callable[[list[tuple[str, str]]], Awaitable[None]] = _nothing_removed
        """Awaited by :meth:`delete_event` and :meth:`apply_retention` with the ``(id, camera)``
        of the events they deleted, oldest first, once they and their snapshots are gone (the
        core announces them to the front ends)."""

    @property
    def db_error(self) -> str | None:
        """The last database write failure (until a write succeeds with no events held
        back), else what the last :meth:`check_writable` found in the database."""
        return self.health.db_error

    @property
    def snapshot_error(self) -> str | None:
        """The last snapshot write failure of a camera (until that camera writes one), else
        what the last :meth:`check_writable` found in the snapshot directory."""
        return self.health.snapshot_error

    @property
    def writable(self) -> bool:
        """Whether neither the database nor the snapshot directory has an error now."""
        return self.health.writable

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> list[Event]:
        """Create the directory and schema, and close events a killed process left open.

        Returns the events so closed (marked ``interrupted``, ending at their last-seen time),
        oldest first, for the server to announce their end.
        """
        try:
            return await self._db(self._open_sync)
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(f"cannot open storage at {self.root}: {exc}") from exc

    def _open_sync(self) -> list[Event]:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        locked_here = not self.lock.held
        self.lock.acquire()
        try:
            return self._open_db_sync()
        except BaseException:
            if locked_here:
                self.lock.release()
            raise

    def _open_db_sync(self) -> list[Event]:
        self.snapshots.open_sync()
        mode = self.root.stat().st_mode & 0o777
        if mode & 0o077:
            log.warning(
                "storage directory %s is open to other users (mode %o): it holds snapshots "
                "and the cameras changed through the API, passwords included; "
                "chmod 700 it",
                self.root,
                mode,
            )
        conn = sqlite3.connect(self.db_path, isolation_level=None)
        # The write-ahead log and shared-memory files SQLite creates take this mode too.
        os.chmod(self.db_path, 0o600)
        st = os.stat(self.db_path)
        self.health.db_identity = (st.st_dev, st.st_ino)
        conn.execute("PRAGMA journal_mode=WAL")
        # WAL with synchronous=NORMAL is durable against process crashes (the case that
        # matters here); only a power cut can lose the last transactions.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.executescript(_SCHEMA)
        conn.executescript(camera_store.SCHEMA)
        self._conn = conn
        left_open = [r[0] for r in conn.execute('SELECT id FROM events WHERE "end" IS NULL')]
        conn.execute(
            'UPDATE events SET "end" = MAX(last_seen, start), interrupted = 1 WHERE "end" IS NULL'
        )
        return [
            self._row_event(row)
            for row in conn.execute(
                # The ids go in as one bound parameter (a JSON list), nothing is interpolated.
                _SELECT + " WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id",  # noqa: S608
                (json.dumps(left_open),),
            )
        ]

    async def close(self) -> None:
        """Wait for every submitted write, then close the database and the threads."""
        await self.flush()
        if self.unsaved_events:
            self._submit(self._write_unsaved)
            await self.flush()
        if self.unsaved_events:
            log.error(
                "%d event(s) could not be written to %s and are lost",
                self.unsaved_events,
                self.db_path,
            )
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                await self._db(self._close_sync)
        self._closed = True
        self._db_thread.shutdown(wait=True)
        self.snapshots.close()
        self.lock.release()

    def _close_sync(self) -> None:
        assert self._conn is not None
        self._conn.execute("PRAGMA optimize")
        self._conn.close()
        self._conn = None

    async def flush(self) -> None:
        """Wait until every write submitted so far is on disk (in the WAL)."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    async def run(self) -> None:
        """The storage task until cancelled: applies retention now and every few minutes, and
        writes again every few seconds what the database refused."""
        retention_due = 0.0
        while True:
            now = time.monotonic()
            if now >= retention_due:
                retention_due = now + RETENTION_INTERVAL
                try:
                    removed = await self.apply_retention()
                    if removed:
                        log.info("retention removed %d event(s)", removed)
                except (sqlite3.Error, OSError) as exc:
                    log.warning("retention failed: %s", exc)
            if self.unsaved_events:
                self._submit(self._write_unsaved)
            # Only a stat of the database file: the full check (a probe written into the
            # snapshot directory) runs when readiness is asked, so an unpolled server does
            # not write to its disk every few seconds (SD cards wear).
            await self.health.watch_db_file()
            await asyncio.sleep(RETRY_SECONDS)

    async def ready(self) -> bool:
        """Whether storage is writable, as the last health check found it
        (:meth:`check_writable`); checked again only when that is older than
        :data:`RETRY_SECONDS`, so a readiness probe polled often costs at most one disk
        check per interval, and a disk that went away shows within one interval."""
        return await self.health.ready(RETRY_SECONDS)

    async def check_writable(self) -> bool:
        """Whether the database accepts writes and the snapshot directory takes files.

        A failure is recorded as :attr:`db_error` or :attr:`snapshot_error`, whichever part
        failed, so the status names the right culprit. A check that passes clears what an
        earlier check found, but not a failed write's error: that one clears only when such a
        write succeeds (a one-byte probe file fits where a snapshot may not, and the database
        probe writes a temporary table, not the database file). So while the database refuses
        writes, the check fails whatever its probe says. So does it while the database
        file is gone (deleted or replaced, its directory removed, its disk unmounted).

        :meth:`ready` runs it at most once every :data:`RETRY_SECONDS` and answers from it
        in between.
        """
        return await self.health.check()

    def _check_db_sync(self) -> None:
        self._c().execute("CREATE TEMP TABLE IF NOT EXISTS probe (x)")
        self._c().execute("INSERT INTO probe VALUES (1)")
        self._c().execute("DELETE FROM probe")

    # -- plumbing ----------------------------------------------------------------------------

    def _c(self) -> sqlite3.Connection:
        if self._conn is None:
            raise sqlite3.ProgrammingError("storage is not open")
        return self._conn

    async def _db(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise sqlite3.ProgrammingError("storage is closed")
        return await asyncio.get_running_loop().run_in_executor(self._db_thread, fn, *args)

    def _submit(self, fn: Callable[..., None], *args: Any) -> None:
        """Queue a write on the database thread without waiting for it."""
        if self._closed:
            log.error("write after storage closed was dropped")
            return
        fut = asyncio.get_running_loop().run_in_executor(self._db_thread, fn, *args)
        self._pending.add(fut)
        fut.add_done_callback(self._write_done)

    def _write_done(self, fut: asyncio.Future[None]) -> None:
        self._pending.discard(fut)
        exc = fut.exception() if not fut.cancelled() else None
        if exc is not None:
            self.health.db_write_failed(f"database write failed: {exc}")
        elif not self.unsaved_events:
            # The outage ends when the held events are written, not with any write that
            # happens to succeed (one that changes nothing, say) while they are still held.
            self.health.db_write_succeeded()

    # -- events ------------------------------------------------------------------------------

    def save_event(self, event: Event, last_seen: float | None = None) -> None:
        """Insert or update ``event`` (ordered, non-blocking)."""
        seen = last_seen if last_seen is not None else time.time()
        self._submit(self._save_sync, event, seen)

    def _save_sync(self, ev: Event, last_seen: float) -> None:
        unsaved = self._unsaved
        unsaved[ev.id] = (ev, last_seen)
        unsaved.move_to_end(ev.id)
        while len(unsaved) > MAX_UNSAVED_EVENTS:
            unsaved.popitem(last=False)
            self.lost_events += 1
            if self.lost_events == 1 or self.lost_events % 1000 == 0:
                log.error(
                    "the database has refused writes for %d events: dropped %d so far",
                    MAX_UNSAVED_EVENTS,
                    self.lost_events,
                )
        self._write_unsaved()

    def _write_unsaved(self) -> None:
        """Write every event waiting for the database in one transaction (the one just saved,
        and any that earlier writes could not store); on failure keep them and raise."""
        unsaved = self._unsaved
        if not unsaved:
            return
        conn = self._c()
        held = self.unsaved_events
        try:
            conn.execute("BEGIN")
            conn.executemany(_UPSERT_EVENT, [_event_row(ev, seen) for ev, seen in unsaved.values()])
            conn.execute("COMMIT")
        except sqlite3.Error:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            self.unsaved_events = len(unsaved)
            raise
        unsaved.clear()
        self.unsaved_events = 0
        if held:
            log.info("the database takes writes again: %d held event(s) written", held)

    @staticmethod
    def _row_event(row: sqlite3.Row | tuple[Any, ...]) -> Event:
        id_, camera, start, end, peak, zones, boxes, snap_start, snap_peak, interrupted = row
        return Event(
            id=id_,
            camera=camera,
            zones=json.loads(zones),
            start=utc(start),
            end=utc(end) if end is not None else None,
            peak_score=peak,
            boxes=[tuple(b) for b in json.loads(boxes)],
            has_snapshot=bool(snap_start or snap_peak),
            interrupted=bool(interrupted),
        )

    async def _events(self, sql: str, args: Sequence[Any]) -> list[Event]:
        """The events an :data:`_SELECT` query finds, in its order."""

        def q() -> list[Event]:
            return [self._row_event(r) for r in self._c().execute(sql, args)]

        return await self._db(q)

    async def get_event(self, event_id: str) -> Event | None:
        """One event by id."""

        def q() -> Event | None:
            row = self._c().execute(_SELECT + " WHERE id = ?", (event_id,)).fetchone()
            return self._row_event(row) if row else None

        return await self._db(q)

    async def list_events(self, query: EventQuery) -> list[Event]:
        """Events matching ``query``, newest first."""
        where: list[str] = []
        args: list[Any] = []
        if query.camera is not None:
            where.append("camera = ?")
            args.append(query.camera)
        if query.zone is not None:
            where.append("EXISTS (SELECT 1 FROM json_each(events.zones) WHERE value = ?)")
            args.append(query.zone)
        if query.since is not None:
            where.append("start >= ?")
            args.append(query.since)
        if query.until is not None:
            where.append("start < ?")
            args.append(query.until)
        if query.before is not None:
            where.append("id < ?")
            args.append(query.before)
        sql = _SELECT
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        args.append(query.limit)
        return await self._events(sql, args)

    async def events_after(
        self, event_id: str, cameras: set[str] | None = None, limit: int = 1000
    ) -> list[Event]:
        """Events with an id greater than ``event_id``, oldest first."""
        sql = _SELECT + " WHERE id > ?"
        args: list[Any] = [event_id]
        if cameras is not None:
            sql += f" AND camera IN ({','.join('?' * len(cameras))})"
            args.extend(sorted(cameras))
        sql += " ORDER BY id LIMIT ?"
        args.append(limit)
        return await self._events(sql, args)

    async def delete_event(self, event_id: str) -> bool:
        """Delete an event and its snapshots; returns whether it existed. A deleted event goes
        to :attr:`on_removed`, as retention's do."""

        def q() -> str | None:
            row = (
                self._c().execute("SELECT camera FROM events WHERE id = ?", (event_id,)).fetchone()
            )
            if row is None:
                return None
            self._c().execute("DELETE FROM events WHERE id = ?", (event_id,))
            self.removed_events += 1
            return str(row[0])

        camera = await self._db(q)
        if camera is None:
            return False
        removed = [(event_id, camera)]
        await self.snapshots.delete(removed)
        await self.on_removed(removed)
        return True

    async def count_events_and_removed(self) -> tuple[int, int]:
        """How many events are stored, and :attr:`removed_events` at that same moment: a
        delete either happened before the count (and is in both) or after it (in neither)."""

        def q() -> tuple[int, int]:
            stored = int(self._c().execute("SELECT COUNT(*) FROM events").fetchone()[0])
            return stored, self.removed_events

        return await self._db(q)

    async def apply_retention(self, now: float | None = None) -> int:
        """Delete ended events older than ``retention_days`` and beyond ``max_events``. An
        open event stays (the pipeline is still writing it); it goes at a later pass once it
        has ended. The events deleted go to :attr:`on_removed`, oldest first."""
        cutoff = (time.time() if now is None else now) - self.settings.retention_days * 86400

        def q() -> list[tuple[str, str]]:
            c = self._c()
            doomed = c.execute(
                'SELECT id, camera FROM events WHERE "end" IS NOT NULL AND (start < ? OR id NOT IN'
                " (SELECT id FROM events ORDER BY id DESC LIMIT ?)) ORDER BY id",
                (cutoff, self.settings.max_events),
            ).fetchall()
            c.executemany("DELETE FROM events WHERE id = ?", [(d[0],) for d in doomed])
            self.removed_events += len(doomed)
            return [(str(a), str(b)) for a, b in doomed]

        doomed = await self._db(q)
        if doomed:
            await self.snapshots.delete(doomed)
            await self.on_removed(doomed)
        return len(doomed)

    # -- snapshots ---------------------------------------------------------------------------

    def snapshot_path(self, camera: str, event_id: str, kind: SnapshotKind) -> Path:
        """Where an event's snapshot lives."""
        return self.snapshots.path(camera, event_id, kind)

    async def write_snapshot(
        self,
        event: Event,
        kind: SnapshotKind,
        frame: npt.NDArray[np.uint8],
        boxes: Sequence[Box],
    ) -> bool:
        """Draw ``boxes`` on ``frame``, store it as the event's ``kind`` snapshot.

        Returns ``False`` (and records :attr:`snapshot_error`) when it cannot be written; the
        caller carries on without it.
        """
        try:
            await self.snapshots.write(event.camera, event.id, kind, frame, boxes)
        except OSError as exc:
            where = self.snapshot_path(event.camera, event.id, kind).parent
            error = f"cannot write snapshot to {where}: {exc.strerror or exc}"
            self.health.snapshot_write_failed(error, event.camera)
            return False
        self.health.snapshot_write_succeeded(event.camera)
        column = "snap_start" if kind == "start" else "snap_peak"
        self._submit(self._mark_sync, event.id, column)
        return True

    def _mark_sync(self, event_id: str, column: str) -> None:
        self._c().execute(f"UPDATE events SET {column} = 1 WHERE id = ?", (event_id,))  # noqa: S608

    async def read_snapshot(
        self, event: Event | str, kind: SnapshotKind | None = None
    ) -> bytes | None:
        """The JPEG of an event (by id, or the :class:`Event` a caller has already read):
        the peak (best) one, else the start one, or ``kind``.

        Raises :class:`StorageError` when the snapshot directory cannot be read (gone,
        unmounted, failing), as opposed to an event without that snapshot (None).
        """
        found = await self.get_event(event) if isinstance(event, str) else event
        if found is None:
            return None
        kinds: list[SnapshotKind] = [kind] if kind else ["peak", "start"]
        try:
            return await self.snapshots.read(found.camera, found.id, kinds)
        except OSError as exc:
            # The snapshot directory is gone, unmounted or failing: not "no snapshot".
            raise StorageError(f"cannot read snapshots: {exc.strerror or exc}") from exc
