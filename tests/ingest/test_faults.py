"""Broken cameras and broken frames: a clear last_error each, and nothing else suffers."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from clip_harness import corrupt_copy
from ingest_harness import (
    camera,
    closed_port,
    running,
    security,
    silent_server,
    take_frames,
    wait_until,
)

from clients.sim import HttpCamera, RtspCamera
from server.cameras import CameraReader


@contextlib.asynccontextmanager
async def bystander(media_dir: Path) -> AsyncIterator[CameraReader]:
    """A healthy file camera running beside the broken one; it must not notice anything."""
    async with running(camera(str(media_dir / "clip.mp4")), security(media_dir)) as reader:
        await take_frames(reader, 2)
        yield reader
        before = reader.status.frames
        await take_frames(reader, 3)
        assert reader.status.state == "online"
        assert reader.status.frames > before
        assert reader.status.reconnects == 0


async def test_connection_refused(media_dir: Path) -> None:
    port = closed_port()
    async with bystander(media_dir), running(camera(f"rtsp://127.0.0.1:{port}/cam")) as reader:
        waited = await wait_until(reader, lambda s: s.state == "offline", 5, "offline")
        assert waited < 2
        assert reader.status.last_error == f"connection refused (127.0.0.1:{port})"


@pytest.mark.parametrize("scheme", ["rtsp", "http"])
async def test_host_that_never_answers_times_out(media_dir: Path, scheme: str) -> None:
    with silent_server() as port:
        settings = camera(f"{scheme}://127.0.0.1:{port}/cam", open_timeout=1.0)
        async with bystander(media_dir), running(settings) as reader:
            await wait_until(reader, lambda s: s.state == "offline", 5, "offline")
            assert reader.status.last_error == f"timed out after 1 s opening 127.0.0.1:{port}"


async def test_wrong_rtsp_path(rtsp_camera: RtspCamera, media_dir: Path) -> None:
    url = rtsp_camera.url.replace("/cam1", "/no-such-stream")
    async with bystander(media_dir), running(camera(url)) as reader:
        await wait_until(reader, lambda s: s.state == "offline", 5, "offline")
        where = url.split("/")[2]
        assert reader.status.last_error == f"not found (404) at {where}: check the URL path"


@pytest.mark.parametrize("kind", ["auto", "mjpeg", "snapshot"])
async def test_wrong_http_path(http_camera: HttpCamera, kind: str) -> None:
    url = f"{http_camera.base_url}/no-such-camera/mjpeg"
    async with running(camera(url, kind=kind)) as reader:
        await wait_until(reader, lambda s: s.state == "offline", 5, "offline")
        where = url.split("/")[2]
        assert reader.status.last_error == f"not found (404) at {where}: check the URL path"


@pytest.mark.parametrize(
    ("fault", "url_attr", "error"),
    [
        ("garbage", "mjpeg_url", "garbage in the MJPEG stream skipped"),
        ("truncated", "mjpeg_url", "truncated JPEG image"),
        ("truncated", "snapshot_url", "truncated JPEG image"),
        ("garbage", "snapshot_url", "not a JPEG image (garbage data)"),
    ],
)
async def test_bad_frames_are_skipped_and_counted(
    http_camera: HttpCamera, media_dir: Path, fault: str, url_attr: str, error: str
) -> None:
    settings = camera(getattr(http_camera, url_attr), snapshot_interval=0.1)
    async with bystander(media_dir), running(settings) as reader:
        await take_frames(reader, 2)
        http_camera.set_fault(fault)  # type: ignore[arg-type]
        await wait_until(reader, lambda s: s.decode_errors > 0, 3, "counting bad frames")
        await asyncio.sleep(0.5)
        http_camera.set_fault("none")
        frames = await take_frames(reader, 3)
        status = reader.status
        # A short burst of bad frames: skipped, counted, and the camera never went down.
        assert status.state == "online"
        assert status.reconnects == 0
        assert status.decode_errors > 0
        assert status.last_error == error
        assert all(f.luma.shape == (180, 320) for f in frames)


@pytest.mark.parametrize("fault", ["garbage", "truncated"])
async def test_only_bad_frames_is_a_stall_then_recovery(
    http_camera: HttpCamera, media_dir: Path, fault: str
) -> None:
    async with bystander(media_dir), running(camera(http_camera.mjpeg_url)) as reader:
        await take_frames(reader, 2)
        http_camera.set_fault(fault)  # type: ignore[arg-type]
        await wait_until(reader, lambda s: s.state == "offline", 6, "offline")
        assert reader.status.last_error == "no valid frame for 2 s"
        assert reader.status.decode_errors > 0
        http_camera.set_fault("none")
        await wait_until(reader, lambda s: s.state == "online", 8, "back online")
        assert reader.status.reconnects == 1


@pytest.mark.parametrize("url_attr", ["mjpeg_url", "snapshot_url"])
async def test_stalled_http_camera_goes_offline(http_camera: HttpCamera, url_attr: str) -> None:
    settings = camera(getattr(http_camera, url_attr), snapshot_interval=0.2)
    async with running(settings) as reader:
        await take_frames(reader, 2)
        http_camera.set_fault("stall")
        await wait_until(reader, lambda s: s.state == "offline", 6, "offline")
        where = http_camera.base_url.split("/")[2]
        assert reader.status.last_error == f"timed out after 2 s reading {where}"
        await asyncio.sleep(0.2)
        assert reader.latest() is not None  # the last picture is still there...
        assert await reader.color_frame() is None  # ...but not passed off as live
        http_camera.set_fault("none")
        await wait_until(reader, lambda s: s.state == "online", 8, "back online")


async def test_corrupt_h264_is_skipped_and_counted(media_dir: Path) -> None:
    corrupt = corrupt_copy(media_dir / "clip.mp4", media_dir / "corrupt.mp4")
    settings = camera(str(corrupt), detect={"fps": 30})
    async with running(settings, security(media_dir)) as reader:
        await wait_until(reader, lambda s: s.decode_errors >= 2, 8, "counting corrupt frames")
        status = reader.status
        assert status.state == "online"
        assert status.reconnects == 0
        assert status.last_error in ("corrupt video data skipped", "corrupt video frame skipped")
        await take_frames(reader, 5)


async def test_a_video_file_that_appears_later_is_picked_up(media_dir: Path) -> None:
    later = media_dir / "later.mp4"
    async with running(camera(str(later)), security(media_dir)) as reader:
        await wait_until(reader, lambda s: s.state == "offline", 5, "offline")
        assert reader.status.last_error == "no such video file: later.mp4 (in security.media_dir)"
        # The file arrives (a share mounted after the server started): tried again, found.
        shutil.copy(media_dir / "clip.mp4", later)
        await wait_until(reader, lambda s: s.state == "online", 10, "online")
        assert (await take_frames(reader, 2))[-1].luma.ndim == 2
