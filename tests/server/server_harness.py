"""The server tests' settings, on top of :mod:`rel_harness`'s real uvicorn serving the real
app on a free port in the test's own event loop, configured as ``motionhub serve`` does.

Running in-process (not a subprocess) lets a test both talk HTTP to the server and record
every message the pipeline publishes on the hub. Subprocess tests (SIGTERM, demo) live in
their own files.
"""

from __future__ import annotations

import threading
from contextlib import AbstractAsyncContextManager
from typing import Any

import rel_harness
from rel_harness import Running

from clients.sim import free_port
from server.config import Settings

__all__ = ["ADMIN", "VIEWER", "Running", "camera_threads", "free_port", "serve", "settings_for"]

ADMIN = "admin-token-0123456789abcdef"
VIEWER = "viewer-token-0123456789abcdef"


def settings_for(
    path: Any, cameras: list[dict[str, Any]], auth: bool = False, **server: Any
) -> Settings:
    """Settings with storage under ``path`` and optional admin/viewer tokens."""
    tokens = [{"token": ADMIN, "role": "admin"}, {"token": VIEWER, "role": "viewer"}]
    return Settings.model_validate(
        {
            "server": {"auth": {"tokens": tokens if auth else []}, **server},
            "storage": {"path": str(path)},
            "cameras": cameras,
        }
    )


def serve(settings: Settings) -> AbstractAsyncContextManager[Running]:
    """The real app for ``settings`` on a free port (:func:`rel_harness.serve`), its client
    sending no token."""
    return rel_harness.serve(settings, token=None)


def camera_threads(camera: str) -> list[threading.Thread]:
    """Live reader threads of ``camera`` (they are named after it)."""
    return [t for t in threading.enumerate() if t.is_alive() and camera in t.name]
