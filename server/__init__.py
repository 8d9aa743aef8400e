"""motionhub's server: camera ingest, the pipeline, events, storage and the front ends."""

from __future__ import annotations

__all__: list[str] = []
