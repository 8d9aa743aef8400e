"""A camera that dies and comes back is followed, every time, without leaking anything."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from ingest_harness import (
    FreezableProxy,
    camera,
    reader_threads,
    running,
    take_frames,
    wait_until,
)
from rel_harness import open_fds, rss_mb

from clients.sim import RtspCamera

CYCLES = 10


@pytest.mark.slow
async def test_rtsp_killed_and_restarted_ten_times(clip: Path) -> None:
    with RtspCamera(clip, path="cam1") as cam:
        where = cam.url.split("/")[2]
        async with running(camera(cam.url)) as reader:
            await take_frames(reader, 3)
            counts: list[tuple[int, int, float]] = []
            for cycle in range(CYCLES + 1):
                cam.kill()  # power cut: no RTSP TEARDOWN, the TCP connection just drops
                down = await wait_until(reader, lambda s: s.state == "offline", 5, "offline")
                assert reader.status.last_error in (
                    f"stream ended ({where})",
                    f"connection lost ({where})",
                ), f"cycle {cycle}: {reader.status.last_error}"
                cam.start()  # returns once the port accepts connections again
                up = await wait_until(reader, lambda s: s.state == "online", 5, "online")
                frame = (await take_frames(reader, 1))[0]
                assert frame.luma.shape == (360, 640)
                assert down < 5
                assert up < 5
                counts.append((threading.active_count(), open_fds(), rss_mb()))
            status = reader.status
            assert status.reconnects == CYCLES + 1
            # The first cycle warms up whatever is created lazily; after it, nothing grows.
            assert {c[0] for c in counts[1:]} == {counts[0][0]}, counts
            assert max(c[1] for c in counts[1:]) <= counts[0][1], counts
            # Memory: a reconnect re-creates the decoder and its buffers; none may pile up.
            assert counts[-1][2] - counts[1][2] < 8, counts
        assert reader_threads() == []


async def test_udp_camera_outage_is_noticed(clip: Path) -> None:
    with RtspCamera(clip, path="cam1") as cam:
        async with running(camera(cam.url, rtsp_transport="udp")) as reader:
            await take_frames(reader, 3)
            cam.kill()
            started = time.monotonic()
            await wait_until(reader, lambda s: s.state == "offline", 5, "offline")
            cam.start()
            await wait_until(reader, lambda s: s.state == "online", 5, "online")
            assert time.monotonic() - started < 10
            await take_frames(reader, 2)


async def test_rtsp_camera_that_hangs_without_hanging_up(rtsp_camera: RtspCamera) -> None:
    async with FreezableProxy(rtsp_camera.port) as proxy:
        url = f"rtsp://127.0.0.1:{proxy.port}/cam1"
        async with running(camera(url)) as reader:
            await take_frames(reader, 3)
            proxy.flowing.clear()  # the TCP connection stays up, nothing comes through
            down = await wait_until(reader, lambda s: s.state == "offline", 5, "offline")
            assert down < 4
            assert reader.status.last_error == f"timed out after 2 s reading 127.0.0.1:{proxy.port}"
            proxy.flowing.set()
            await wait_until(reader, lambda s: s.state == "online", 8, "online")
            await take_frames(reader, 2)
