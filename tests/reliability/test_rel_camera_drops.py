"""An RTSP camera killed and restarted 20 times under the whole server: it comes back every
time, and threads, file descriptors and memory stay flat."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rel_harness import Gauges, gauges, make_settings, metric, named_threads, serve

from clients.sim import RtspCamera, SceneSpec, render_clip
from server.messages import CameraStatusMessage

CYCLES = 20
SPEC = SceneSpec(width=320, height=240, fps=10, seed=11, objects=2, loop_seconds=4)
WARMUP = 3
"""Cycles after which everything created lazily (FFmpeg's and glibc's pools) exists."""
RSS_SLACK_MB = 12.0
"""Allocator noise allowed on top of the warmed-up RSS; a leak of one decoder per cycle
(several MB each at this size) would pass it within a few cycles."""

log = logging.getLogger(__name__)


def online_after(reconnects: int) -> Callable[[dict[str, Any]], bool]:
    """Whether a camera is online again after its ``reconnects``-th reconnection."""
    return lambda c: c["status"] == "online" and c["reconnects"] == reconnects


@pytest.mark.slow
async def test_rtsp_camera_killed_and_restarted_20_times(tmp_path: Path) -> None:
    clip = render_clip(SPEC)
    with RtspCamera(clip, path="cam") as cam:
        where = cam.url.split("/")[2]
        settings = make_settings(
            tmp_path,
            [
                {
                    "id": "door",
                    "url": cam.url,
                    "open_timeout": 3,
                    "read_timeout": 3,
                    "stall_timeout": 3,
                }
            ],
        )
        async with serve(settings) as srv:
            await srv.wait_camera("door", lambda c: c["status"] == "online", 20, "online")
            history: list[Gauges] = []
            readers: list[int] = []
            for cycle in range(1, CYCLES + 1):
                processed = await srv.analysed("door")
                seen = len(srv.messages)
                cam.kill()  # power cut: no TEARDOWN, the TCP connection just drops
                cam.start()  # back on the same port as fast as the simulator can
                down = await srv.wait_for(
                    CameraStatusMessage, lambda m: m.status == "offline", 10, after=seen
                )
                # The reader saw the stream end, or (when FFmpeg retried inside one read)
                # the refused connection behind it: either way a clear reason, no password.
                assert down.last_error in (
                    f"stream ended ({where})",
                    f"connection lost ({where})",
                    f"connection refused ({where})",
                ), down
                up = await srv.wait_camera(
                    "door", online_after(cycle), 10, f"back online (cycle {cycle})"
                )
                # Back means analysed again, not just connected.
                await srv.wait_analysed("door", processed + 2)
                assert up["reconnects"] == cycle
                history.append(gauges())
                readers.append(len(named_threads("door")))
            log.info("gauges per cycle: %s", [str(g) for g in history])
            text = await srv.metrics()
            statuses = [m.status for m in srv.messages if isinstance(m, CameraStatusMessage)]
        assert metric(text, "motionhub_camera_reconnects_total", camera="door") == CYCLES
        assert metric(text, "motionhub_camera_up", camera="door") == 1
        # Every drop and every comeback was announced to the front ends.
        assert statuses.count("offline") >= CYCLES
        assert statuses.count("online") >= CYCLES + 1

    base = history[WARMUP - 1]
    after = history[WARMUP:]
    print(f"\ncamera drops: after cycle {WARMUP}: {base}; after cycle {CYCLES}: {history[-1]}")
    # Exactly one reader thread throughout; the process's other threads (worker pools
    # that come and go) never beyond what the warm-up needed.
    assert readers == [1] * CYCLES, readers
    assert max(g.threads for g in after) <= max(g.threads for g in history[:WARMUP]), [
        str(g) for g in history
    ]
    assert max(g.fds for g in after) <= base.fds, [str(g) for g in history]
    assert max(g.rss_mb for g in after) <= base.rss_mb + RSS_SLACK_MB, [str(g) for g in history]
    # The reader thread is gone with the server.
    assert named_threads("door") == []
