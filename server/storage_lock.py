"""One server per data directory: the ``motionhub.lock`` file, held with ``flock``.

Two servers on one directory would each record every event of the same cameras into the
same database, and each would mark the other's open events interrupted when it stops.
``flock`` is released by the kernel when the holder exits, however it exits, so a killed
server never blocks a restart.

:class:`StorageError` lives here, with the lock's own error, so that :mod:`server.storage`
(which re-exports both) and this module need not import each other.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

__all__ = ["LOCK_NAME", "DirectoryLock", "StorageError", "StorageInUse", "check_not_in_use"]

LOCK_NAME = "motionhub.lock"


class StorageError(RuntimeError):
    """Storage could not be opened or read (the data directory or database is unusable)."""


class StorageInUse(StorageError):
    """Another process (another motionhub) holds the data directory's lock.

    ``option`` is how the user named the directory (``storage.path``, or the demo's
    ``--data``): the message tells them to change that."""

    def __init__(self, directory: Path, holder: str, option: str = "storage.path") -> None:
        self.directory = directory
        self.pid = int(holder) if holder.isdigit() else None
        pid = f" (pid {self.pid})" if self.pid is not None else ""
        super().__init__(
            f"storage directory {directory} is in use by another motionhub{pid}; "
            f"stop it or use another {option}"
        )


def _flock(fd: int, directory: Path, option: str) -> None:
    """Take the lock on ``fd`` without waiting, or raise :class:`StorageInUse` naming the
    pid its holder wrote into the file."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode("ascii", "replace").strip()
        raise StorageInUse(directory, holder, option) from None


def check_not_in_use(directory: Path, option: str) -> None:
    """Raise :class:`StorageInUse` (naming ``option``) if a motionhub holds ``directory``.

    Only a check, for a clear error before anything starts: the lock is released at once,
    and :meth:`DirectoryLock.acquire` takes it for good (and still refuses a directory
    taken in between, naming ``storage.path``)."""
    try:
        fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return  # never used, or its directory does not exist yet: nobody holds it
    try:
        _flock(fd, directory, option)
    finally:
        os.close(fd)  # closing the only descriptor releases a flock taken here


class DirectoryLock:
    """The lock of one data directory, held from :meth:`acquire` to :meth:`release`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this process holds the lock through this object."""
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock (a no-op when held already) and write this process's pid into the
        file, or raise :class:`StorageInUse` naming its holder."""
        if self._fd is not None:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            _flock(fd, self.directory, "storage.path")
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        """Let the lock go (what the kernel does when the process exits)."""
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor releases the flock
            self._fd = None
