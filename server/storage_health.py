"""Whether storage takes writes: the errors writes met, and the health check.

Each error has two sources: a failed write, cleared when such a write succeeds (it also
clears the check's), and the health check, cleared by the next check that passes. The
write's is the one shown (see :attr:`StorageHealth.db_error` and
:attr:`StorageHealth.snapshot_error`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from server.snapshot_store import SnapshotStore

__all__ = ["StorageHealth"]

# The storage's own log name, as before these parts had modules of their own.
log = logging.getLogger("server.storage")


class StorageHealth:
    """The storage's error state and its health check (see the module docstring)."""

    def __init__(
        self,
        db_path: Path,
        snapshots: SnapshotStore,
        probe_db: Callable[[], Awaitable[None]],
        on_error: Callable[[str], None],
    ) -> None:
        self.db_path = db_path
        self._snapshots = snapshots
        self._probe_db = probe_db
        self._on_error = on_error
        self._snapshot_write_errors: dict[str, str] = {}
        """The last snapshot write failure of each camera whose snapshots are failing, oldest
        first: another camera's success says nothing about this one's directory."""
        self.snapshot_check_error: str | None = None
        self.db_write_error: str | None = None
        """Set from a failed write until a write succeeds with every held event written: while
        it is set, the database is in an outage."""
        self.db_check_error: str | None = None
        self.db_identity: tuple[int, int] | None = None
        """(device, inode) of the database file when it was opened."""
        self.db_gone_error: str | None = None
        """Set while the database file on disk is not the one open (deleted, or its disk
        unmounted): writes still succeed, into a file no restart will find."""
        self._lock = asyncio.Lock()
        """One check at a time: callers arriving during one wait for its answer instead of
        queueing more disk work behind a slow disk."""
        self._checked: tuple[float, bool] | None = None
        """When (monotonic) the last check finished, and what it found."""

    @property
    def db_error(self) -> str | None:
        """The last database write failure (until a write succeeds with no events held
        back), else what the last check found in the database."""
        return self.db_write_error or self.db_gone_error or self.db_check_error

    @property
    def snapshot_write_error(self) -> str | None:
        """The latest snapshot write failure of a camera still failing, else None."""
        return next(reversed(self._snapshot_write_errors.values()), None)

    @property
    def snapshot_error(self) -> str | None:
        """The last snapshot write failure of a camera (until that camera writes one), else
        what the last check found in the snapshot directory."""
        return self.snapshot_write_error or self.snapshot_check_error

    @property
    def writable(self) -> bool:
        """Whether neither the database nor the snapshot directory has an error now."""
        return self.db_error is None and self.snapshot_error is None

    def db_write_failed(self, error: str) -> None:
        """Record a failed database write: logged and counted once per outage, not once per
        event or retry."""
        if error != self.db_write_error:
            log.error("%s", error)
        if self.db_write_error is None:
            self._on_error("db")
        self.db_write_error = error

    def db_write_succeeded(self) -> None:
        """The database took every held event: the outage, and what a check found, are over."""
        self.db_write_error = self.db_check_error = None

    def snapshot_write_failed(self, error: str, camera: str) -> None:
        """Record a snapshot that could not be written (logged and counted each time)."""
        self._snapshot_write_errors.pop(camera, None)
        self._snapshot_write_errors[camera] = error
        log.error("%s", error, extra={"camera": camera})
        self._on_error("snapshot")

    def snapshot_write_succeeded(self, camera: str) -> None:
        """A snapshot of ``camera`` was written: its snapshot directory takes files again."""
        self._snapshot_write_errors.pop(camera, None)
        self.snapshot_check_error = None

    def camera_removed(self, camera: str) -> None:
        """Forget the snapshot failure of a deleted camera: it writes no more snapshots."""
        self._snapshot_write_errors.pop(camera, None)

    async def ready(self, max_age: float) -> bool:
        """What the last check found, checking again only when it is ``max_age`` seconds
        old or older."""
        async with self._lock:
            if self._checked is not None:
                at, ok = self._checked
                if time.monotonic() - at < max_age:
                    return ok
            return await self._check_locked()

    async def check(self) -> bool:
        """Check now (see :meth:`server.storage.Storage.check_writable`)."""
        async with self._lock:
            return await self._check_locked()

    async def _check_locked(self) -> bool:
        ok = await self._check()
        self._checked = (time.monotonic(), ok)
        return ok

    async def _check(self) -> bool:
        if not await self.watch_db_file():
            return False
        try:
            await self._probe_db()
        except (OSError, sqlite3.Error) as exc:
            self.db_check_error = f"database not writable: {exc}"
            return False
        self.db_check_error = None
        if self.db_write_error is not None:
            return False
        try:
            await self._snapshots.run(self._snapshots.probe_sync)
        except OSError as exc:
            self.snapshot_check_error = (
                f"cannot write snapshots to {self._snapshots.directory}: {exc.strerror or exc}"
            )
            return False
        self.snapshot_check_error = None
        return True

    async def watch_db_file(self) -> bool:
        """Whether the database file on disk is still the one open. When it was deleted or
        replaced (the storage directory removed, its disk unmounted), :attr:`db_error` says
        so until it is back."""
        gone = await self._snapshots.run(self._db_gone_sync)
        if gone != self.db_gone_error:
            if gone is not None:
                log.error("%s", gone)
                self._on_error("db")
            else:
                log.info("the database file %s is back", self.db_path)
            self.db_gone_error = gone
        return gone is None

    def _db_gone_sync(self) -> str | None:
        if self.db_identity is None:
            return None
        try:
            st = os.stat(self.db_path)
        except OSError as exc:
            reason = exc.strerror or str(exc)
        else:
            if (st.st_dev, st.st_ino) == self.db_identity:
                return None
            reason = "replaced by another file"
        return (
            f"database file {self.db_path} is gone ({reason}) since it was opened: is the "
            "storage directory removed or its disk unmounted? Events are not kept; restore "
            "it and restart"
        )
