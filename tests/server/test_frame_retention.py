"""A camera's pipeline keeps no picture while it waits: a decoded frame (3 MB at 1080p) or
a snapshot's colour image (6 MB) held in a suspended coroutine's locals until the next one
comes is memory every camera pays for nothing.

The check reads the locals of the pipeline's coroutines where they are suspended, in the
real server running a simulated camera that makes events and snapshots.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from types import CoroutineType
from typing import Any

from server_harness import serve, settings_for

from server.messages import EventUpdateMessage


def _await_chain(coro: Any) -> Iterator[Any]:
    """``coro`` and every coroutine it is awaiting, outermost first."""
    while coro is not None:
        yield coro
        coro = getattr(coro, "cr_await", None)


def _suspended(name: str) -> list[tuple[dict[str, Any], list[str]]]:
    """Locals of every suspended coroutine of the running loop's tasks called ``name``, each
    with the names of the coroutines it awaits."""
    found = []
    for task in asyncio.all_tasks():
        chain = list(_await_chain(task.get_coro()))
        for i, coro in enumerate(chain):
            if isinstance(coro, CoroutineType) and coro.cr_code.co_name == name:
                inner = [getattr(c, "__qualname__", type(c).__name__) for c in chain[i + 1 :]]
                found.append((dict(coro.cr_frame.f_locals), inner))
    return found


async def test_the_pipeline_holds_no_frame_or_snapshot_image_while_it_waits(
    tmp_path: Any, sim_cameras: Any
) -> None:
    cams = [{"id": "busy", "url": sim_cameras.mjpeg_url_for("busy"), "events": {"min_frames": 2}}]
    async with serve(settings_for(tmp_path, cams)) as srv:
        await srv.wait_for(EventUpdateMessage, lambda m: m.event.has_snapshot, within=30)
        await srv.wait_analysed("busy", 5)

        frames = _suspended("_frames")
        assert frames, "the pipeline's frame loop is not running"
        for local, _ in frames:
            assert local["seq"] > 0  # it has handled frames...
            assert "frame" not in local  # ...and keeps none through the wait

        # The snapshot worker, once back waiting for the next request, keeps no image.
        deadline = time.monotonic() + 10
        while True:
            workers = _suspended("_snapshot_worker")
            assert workers, "the snapshot worker is not running"
            idle = [local for local, inner in workers if inner and "Queue.get" in inner[0]]
            if idle:
                assert all("frame" not in local for local in idle), idle
                break
            assert time.monotonic() < deadline, "the snapshot worker never went idle"
            await asyncio.sleep(0.02)
