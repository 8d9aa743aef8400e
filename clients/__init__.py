"""Programs that talk to motionhub from the outside: the camera simulator (:mod:`clients.sim`)."""

from __future__ import annotations

__all__: list[str] = []
