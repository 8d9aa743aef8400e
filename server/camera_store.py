"""The cameras created, changed or deleted through the API: the ``cameras`` table.

A camera stored here wins over the config file on the next start; a deleted one is kept as
a row without settings, so the config file cannot bring it back. The table lives in the
storage's database and is read and written only on the storage's database thread, through
the functions :class:`server.storage.Storage` hands over, so camera changes are ordered
with the event writes around them and share their error handling.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import ValidationError

from server.config import CameraSettings
from server.validation_text import error_lines

__all__ = ["CameraStore", "StoredCameras"]

# The storage's own log name, as before these parts had modules of their own.
log = logging.getLogger("server.storage")

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS cameras (
    id TEXT PRIMARY KEY,
    position INTEGER NOT NULL,
    config TEXT,
    updated REAL NOT NULL
);
"""
"""Applied by the storage when it opens the database."""

_UPSERT_CAMERA = (
    "INSERT INTO cameras (id, position, config, updated) VALUES (?, ?, ?, ?)"
    " ON CONFLICT(id) DO UPDATE SET position = excluded.position,"
    " config = excluded.config, updated = excluded.updated"
)


@dataclass(frozen=True)
class StoredCameras:
    """Camera changes made through the API: full settings by id, and deleted ids."""

    cameras: list[CameraSettings]
    deleted: set[str]


class CameraStore:
    """The ``cameras`` table, on the storage's connection and database thread.

    ``conn`` returns the open connection (raising when there is none), ``read`` runs a
    function on the database thread and awaits it, ``write`` queues one there without
    waiting (the storage's ordered write queue).
    """

    def __init__(
        self,
        conn: Callable[[], sqlite3.Connection],
        read: Callable[[Callable[[], Any]], Awaitable[Any]],
        write: Callable[..., None],
    ) -> None:
        self._conn = conn
        self._read = read
        self._write = write

    def save(self, camera: CameraSettings, position: int) -> None:
        """Persist a camera created or changed through the API (ordered, non-blocking)."""
        self._write(self._upsert_sync, camera.id, position, camera.model_dump_json())

    def delete(self, camera_id: str) -> None:
        """Remember that a camera was deleted, so the config file cannot bring it back."""
        self._write(self._upsert_sync, camera_id, -1, None)

    def _upsert_sync(self, camera_id: str, position: int, config: str | None) -> None:
        self._conn().execute(_UPSERT_CAMERA, (camera_id, position, config, time.time()))

    async def load(self) -> StoredCameras:
        """The camera changes stored by earlier runs."""

        def q() -> list[tuple[str, str | None]]:
            rows = self._conn().execute("SELECT id, config FROM cameras ORDER BY position, updated")
            return [(str(a), b) for a, b in rows]

        rows: list[tuple[str, str | None]] = await self._read(q)
        cameras, deleted = [], set()
        for cam_id, config in rows:
            if config is None:
                deleted.add(cam_id)
                continue
            try:
                cameras.append(CameraSettings.model_validate_json(config))
            except ValidationError as exc:
                # Key and reason only: the stored input may hold a password.
                log.warning(
                    "stored settings of camera %s are no longer valid (%s), using the config file",
                    cam_id,
                    "; ".join(error_lines(exc)),
                )
        return StoredCameras(cameras, deleted)
