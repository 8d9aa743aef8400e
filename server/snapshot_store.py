"""Event snapshots as JPEG files, written and read on a thread of their own.

Layout under the storage directory::

    snapshots/<camera>/<id>-start.jpg
    snapshots/<camera>/<id>-peak.jpg

Files are written to a temporary name and renamed, so a crash never leaves half a JPEG.
JPEG encoding and file access run on the snapshot thread, so a slow disk or a large frame
never holds up the database thread or the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import numpy.typing as npt

from server.messages import Box
from server.snapshots import annotate, encode_jpeg

__all__ = ["SnapshotKind", "SnapshotStore"]

# The storage's own log name, as before these parts had modules of their own.
log = logging.getLogger("server.storage")

T = TypeVar("T")
SnapshotKind = Literal["start", "peak"]


class SnapshotStore:
    """The snapshot directory and the thread that touches it."""

    def __init__(self, directory: Path, quality: int) -> None:
        self.directory = directory
        self.quality = quality
        self.thread = ThreadPoolExecutor(1, thread_name_prefix="motionhub-snap")
        """The snapshot thread; the storage's other file checks run on it too."""

    def path(self, camera: str, event_id: str, kind: SnapshotKind) -> Path:
        """Where an event's snapshot lives."""
        return self.directory / camera / f"{event_id}-{kind}.jpg"

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the snapshot thread."""
        return await asyncio.get_running_loop().run_in_executor(self.thread, fn, *args)

    def close(self) -> None:
        """Wait for the thread's work, then stop it."""
        self.thread.shutdown(wait=True)

    def open_sync(self) -> None:
        """Create the directory, and remove the temporary files of a process killed while
        writing a snapshot (the rename never happened, so no stored snapshot is affected)."""
        self.directory.mkdir(exist_ok=True, mode=0o700)
        for leftover in self.directory.glob("*/*.tmp"):
            with contextlib.suppress(OSError):
                leftover.unlink()

    async def write(
        self, camera: str, event_id: str, kind: SnapshotKind,
        frame: npt.NDArray[np.uint8], boxes: Sequence[Box],
    ) -> None:  # fmt: skip
        """Draw ``boxes`` on ``frame`` and store it; raises :class:`OSError` when it cannot."""
        await self.run(self._write_jpeg_sync, self.path(camera, event_id, kind), frame, boxes)

    def _write_jpeg_sync(
        self, path: Path, frame: npt.NDArray[np.uint8], boxes: Sequence[Box]
    ) -> None:
        data = encode_jpeg(annotate(frame, boxes), self.quality)
        path.parent.mkdir(exist_ok=True)  # the camera's folder; never the directories above
        tmp = path.with_suffix(".tmp")
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except OSError:
            # A full disk leaves a partial temporary file: remove it so it does not take
            # the space the next write needs (the stored snapshot, if any, is untouched).
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise

    async def read(self, camera: str, event_id: str, kinds: Sequence[SnapshotKind]) -> bytes | None:
        """The first of ``kinds`` stored for the event, or None. Raises :class:`OSError` when
        the directory cannot be read (gone, unmounted, failing), as opposed to a missing
        file."""
        for kind in kinds:
            path = self.path(camera, event_id, kind)
            try:
                return await self.run(path.read_bytes)
            except FileNotFoundError:
                continue
            except OSError as exc:
                log.warning("cannot read snapshot %s: %s", path, exc.strerror or exc)
                raise
        return None

    async def delete(self, items: Sequence[tuple[str, str]]) -> None:
        """Delete the snapshots of deleted events, given as (event id, camera)."""
        await self.run(self._unlink_sync, items)

    def _unlink_sync(self, items: Sequence[tuple[str, str]]) -> None:
        # A file that cannot go (a read-only or vanished network share, a permission) is
        # logged and left behind: its event is gone already, and the other files still go.
        for event_id, camera in items:
            for kind in ("start", "peak"):
                path = self.path(camera, event_id, kind)
                try:
                    path.unlink()
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    log.warning("cannot delete snapshot %s: %s", path, exc.strerror or exc)

    def probe_sync(self) -> None:
        """Write and remove a one-byte file, raising :class:`OSError` if that fails."""
        # Not the storage directory itself: if it is gone (removed, its disk unmounted),
        # making a new one would hide that and write to whatever disk lies beneath.
        self.directory.mkdir(exist_ok=True, mode=0o700)
        probe = self.directory / ".probe"
        try:
            # One byte, not an empty file: a full disk still has inodes for empty files.
            probe.write_bytes(b"x")
        finally:
            with contextlib.suppress(FileNotFoundError):
                probe.unlink()
