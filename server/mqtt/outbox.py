"""The outbox: event messages waiting for the broker, kept in order and on disk.

The pipeline hands messages over with :meth:`Outbox.put`, which never blocks: the
message joins an in-memory queue (the delivery order) and its row is written to
SQLite by one writer thread, so the event loop never waits on the disk. Delivery
takes messages in sequence order and :meth:`Outbox.ack` removes each once the
broker has acknowledged it. Whatever is still unacknowledged when the process
stops is loaded again by the next :meth:`Outbox.open`, and delivered first.

Delivery is at least once: a message the broker received just before a
disconnect may be sent again, with the same message id, so consumers de-duplicate
on it. Past ``cap`` pending messages the oldest is dropped and counted.

When the disk fails (full, read-only, gone), the messages stay queued in memory and
delivery goes on; what could not be written is written again every
:data:`RETRY_SECONDS` and with the next write, so once the disk is back the pending
messages are on it again and survive a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Outbox", "OutboxMessage"]

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY,
    msg_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    created REAL NOT NULL
)
"""
_BATCH = 2000
RETRY_SECONDS = 5.0
"""How often the writer retries rows it could not write while nothing new comes in."""


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One queued message; ``seq`` orders delivery and survives restarts."""

    seq: int
    msg_id: str
    topic: str
    payload: bytes
    qos: int
    created: float


_Row = tuple[int, str, str, bytes, int, float]
"""An outbox row: seq, msg_id, topic, payload, qos, created."""


@dataclass(slots=True)
class _Write:
    inserts: list[OutboxMessage]
    deletes: list[int]


class Outbox:
    """An ordered, capped, SQLite-backed queue of messages for the broker.

    Use from the event loop thread only (the writer thread is internal).
    """

    def __init__(self, path: Path, cap: int) -> None:
        self.path = path
        self.cap = cap
        self.dropped = 0
        """Messages thrown away because ``cap`` was reached (oldest first)."""
        self.write_errors = 0
        """Failed disk writes (the messages stay queued in memory and are written again)."""
        self.persistent = False
        """Whether messages are being written to disk."""
        self._items: OrderedDict[int, OutboxMessage] = OrderedDict()
        self._next_seq = 1
        self._added = asyncio.Event()
        self._emptied = asyncio.Event()
        self._emptied.set()
        self._ops: queue.SimpleQueue[_Write | asyncio.Future[None] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle ---------------------------------------------------------------------

    async def open(self) -> None:
        """Open (or create) the database and load what a previous run left pending.

        Messages put before this are kept and queued after the loaded ones.
        """
        self._loop = asyncio.get_running_loop()
        rows = await asyncio.to_thread(self._open_db)
        early = list(self._items.values())
        self._items.clear()
        for msg in rows:
            self._items[msg.seq] = msg
            self._next_seq = max(self._next_seq, msg.seq + 1)
        renumbered = [self.put(m.topic, m.payload, m.msg_id, m.qos) for m in early]
        while len(self._items) > self.cap:
            self._drop_oldest()
        if rows:
            log.info("outbox: %d message(s) pending from a previous run", len(rows))
        if self._conn is not None:
            self._thread = threading.Thread(target=self._writer, name="mqtt-outbox", daemon=True)
            self._thread.start()
            unsaved = [m for m in renumbered if m.seq in self._items]
            if unsaved:
                self._ops.put(_Write(unsaved, []))

    async def flush(self) -> None:
        """Wait until every put and ack so far is on disk."""
        if self._thread is None or self._loop is None:
            return
        done: asyncio.Future[None] = self._loop.create_future()
        self._ops.put(done)
        await done

    async def close(self) -> None:
        """Write everything still queued, then close the database."""
        if self._thread is None:
            return
        await self.flush()
        self._ops.put(None)
        await asyncio.to_thread(self._thread.join)
        self._thread = None

    # -- the queue ---------------------------------------------------------------------

    def put(self, topic: str, payload: bytes, msg_id: str, qos: int = 1) -> OutboxMessage:
        """Queue a message (never blocks); past ``cap`` the oldest pending one is dropped.

        Messages put before :meth:`open` are kept in memory and written once it is open.
        """
        while len(self._items) >= self.cap:
            self._drop_oldest()
        msg = OutboxMessage(self._next_seq, msg_id, topic, payload, qos, time.time())
        self._next_seq += 1
        self._items[msg.seq] = msg
        self._emptied.clear()
        self._added.set()
        if self._thread is not None:
            self._ops.put(_Write([msg], []))
        return msg

    def ack(self, seq: int) -> None:
        """The broker has the message ``seq``: forget it (no-op if already gone)."""
        if self._items.pop(seq, None) is None:
            return
        if not self._items:
            self._emptied.set()
        if self._thread is not None:
            self._ops.put(_Write([], [seq]))

    def first_from(self, seq: int) -> OutboxMessage | None:
        """The oldest pending message whose sequence number is at least ``seq``."""
        for msg in self._items.values():
            if msg.seq >= seq:
                return msg
        return None

    async def wait_for(self, seq: int) -> OutboxMessage:
        """Wait until a message with a sequence number of at least ``seq`` is pending."""
        while True:
            msg = self.first_from(seq)
            if msg is not None:
                return msg
            self._added.clear()
            await self._added.wait()

    async def wait_empty(self, within: float) -> bool:
        """Wait up to ``within`` seconds for every message to be acknowledged."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await self._emptied.wait()
        return self._emptied.is_set()

    def __len__(self) -> int:
        return len(self._items)

    def _drop_oldest(self) -> None:
        seq, _ = self._items.popitem(last=False)
        self.dropped += 1
        if self.dropped == 1 or self.dropped % 1000 == 0:
            log.warning("outbox full (%d messages): dropped %d so far", self.cap, self.dropped)
        if not self._items:
            self._emptied.set()
        if self._thread is not None:
            self._ops.put(_Write([], [seq]))

    # -- the disk (writer thread) ---------------------------------------------------------

    def _open_db(self) -> list[OutboxMessage]:
        try:
            return self._connect()
        except sqlite3.DatabaseError as exc:
            if "not a database" not in str(exc) and "malformed" not in str(exc):
                return self._memory_only(exc)
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            log.error("outbox: %s is damaged (%s); moved aside to %s", self.path, exc, aside)
            with contextlib.suppress(OSError):
                self.path.rename(aside)
            try:
                return self._connect()
            except (OSError, sqlite3.Error) as exc2:
                return self._memory_only(exc2)
        except OSError as exc:
            return self._memory_only(exc)

    def _memory_only(self, exc: BaseException) -> list[OutboxMessage]:
        log.error(
            "outbox: cannot use %s (%s); pending messages are kept in memory only", self.path, exc
        )
        self.write_errors += 1
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None
        return []

    def _connect(self) -> list[OutboxMessage]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn = conn
        conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a crash of the process, which is the case that matters.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(_SCHEMA)
        rows = conn.execute(
            "SELECT seq, msg_id, topic, payload, qos, created FROM outbox ORDER BY seq"
        ).fetchall()
        self.persistent = True
        return [OutboxMessage(r[0], r[1], r[2], bytes(r[3]), r[4], r[5]) for r in rows]

    def _writer(self) -> None:
        conn = self._conn
        assert conn is not None
        # What a failed write left unwritten, by sequence number: rows to insert, and rows
        # on disk to delete. A row acknowledged before it reached the disk never goes there.
        unsaved: dict[int, _Row] = {}
        undeleted: set[int] = set()
        closing = False
        while not closing:
            waiters: list[asyncio.Future[None]] = []
            for op in self._next_batch(RETRY_SECONDS if unsaved or undeleted else None):
                if op is None:
                    closing = True
                elif isinstance(op, _Write):
                    for m in op.inserts:
                        unsaved[m.seq] = (m.seq, m.msg_id, m.topic, m.payload, m.qos, m.created)
                    for seq in op.deletes:
                        if unsaved.pop(seq, None) is None:
                            undeleted.add(seq)
                else:
                    waiters.append(op)
            if self._write(conn, list(unsaved.values()), [(s,) for s in undeleted]):
                unsaved.clear()
                undeleted.clear()
            for fut in waiters:
                self._resolve(fut)
        with contextlib.suppress(sqlite3.Error):
            conn.close()
        self._conn = None

    def _next_batch(self, timeout: float | None) -> list[_Write | asyncio.Future[None] | None]:
        """Wait up to ``timeout`` seconds (None: for ever) for work, then take what is queued;
        nothing if the wait ran out."""
        try:
            batch = [self._ops.get(timeout=timeout)]
        except queue.Empty:
            return []
        while len(batch) < _BATCH:
            try:
                batch.append(self._ops.get_nowait())
            except queue.Empty:
                break
        return batch

    def _write(
        self, conn: sqlite3.Connection, inserts: list[_Row], deletes: list[tuple[int]]
    ) -> bool:
        """One transaction; False (rolled back, logged on the first failure) if it failed."""
        if not inserts and not deletes:
            return True
        try:
            conn.execute("BEGIN")
            # Inserts first: a row acknowledged in the same batch it was queued in must go.
            if inserts:
                conn.executemany("INSERT OR REPLACE INTO outbox VALUES (?, ?, ?, ?, ?, ?)", inserts)
            if deletes:
                conn.executemany("DELETE FROM outbox WHERE seq = ?", deletes)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            self.write_errors += 1
            if self.persistent:
                log.error(
                    "outbox: cannot write %s: %s (messages stay queued in memory; "
                    "retrying every %g s)",
                    self.path,
                    exc,
                    RETRY_SECONDS,
                )
            self.persistent = False
            return False
        if not self.persistent:
            log.info("outbox: %s is written again (%d message(s) saved)", self.path, len(inserts))
        self.persistent = True
        return True

    def _resolve(self, fut: asyncio.Future[None]) -> None:
        def done() -> None:
            if not fut.done():
                fut.set_result(None)

        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(done)
