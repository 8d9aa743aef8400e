"""Bad frames under the whole server: corrupt H.264 over RTSP, truncated JPEGs and garbage
between MJPEG parts are skipped and counted (API and metrics), the camera stays online and
keeps being analysed, and a healthy camera beside them notices nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from clip_harness import corrupt_copy
from rel_harness import make_settings, metric, serve

from clients.sim import HttpCamera, RtspCamera, SceneSpec, render_clip

SPEC = SceneSpec(width=320, height=240, fps=10, seed=9, objects=2, loop_seconds=4)
FAST = {"open_timeout": 3, "read_timeout": 3, "stall_timeout": 3}


def more_bad_than(count: int) -> Callable[[dict[str, Any]], bool]:
    """Whether a camera has counted more than ``count`` bad frames."""
    return lambda c: int(c["bad_frames"]) > count


@pytest.mark.slow
async def test_bad_frames_are_skipped_and_counted_and_cameras_stay_up(tmp_path: Path) -> None:
    clip = render_clip(SPEC)
    corrupt = corrupt_copy(clip, tmp_path / "corrupt.mp4")
    with (
        HttpCamera({"good": SPEC, "mjpeg": SPEC, "snap": SPEC}) as http,
        RtspCamera(corrupt, path="h264") as rtsp,
    ):
        cameras = [
            {"id": "good", "url": http.mjpeg_url_for("good"), **FAST},
            {"id": "mjpeg", "url": http.mjpeg_url_for("mjpeg"), **FAST},
            {
                "id": "snap",
                "url": http.snapshot_url_for("snap"),
                "kind": "snapshot",
                "snapshot_interval": 0.1,
                **FAST,
            },
            {"id": "h264", "url": rtsp.url, **FAST},
        ]
        async with serve(make_settings(tmp_path / "data", cameras)) as srv:
            for cam in ("good", "mjpeg", "snap", "h264"):
                await srv.wait_camera(cam, lambda c: c["status"] == "online", 20, "online")
            good_before = await srv.analysed("good")

            # Garbage between the parts, then truncated JPEGs, each for a second.
            expected = {}
            for fault, cam, error in [
                ("garbage", "mjpeg", "garbage in the MJPEG stream skipped"),
                ("truncated", "mjpeg", "truncated JPEG image"),
                ("truncated", "snap", "truncated JPEG image"),
            ]:
                before = (await srv.camera(cam))["bad_frames"]
                http.set_fault(fault, cam)  # type: ignore[arg-type]
                await srv.wait_camera(cam, more_bad_than(before), 5, f"counting {fault} on {cam}")
                await asyncio.sleep(1.0)
                http.set_fault("none", cam)
                expected[cam] = error
                after = await srv.camera(cam)
                assert after["last_error"] == error, after

            # The corrupt H.264 loops every 4 s: some of it has gone by.
            await srv.wait_camera("h264", lambda c: c["bad_frames"] >= 2, 10, "counting corrupt")
            expected["h264"] = "corrupt"

            # Every camera is still up, never reconnected, and is analysed again.
            counts = {cam: await srv.analysed(cam) for cam in expected}
            for cam, error in expected.items():
                await srv.wait_analysed(cam, counts[cam] + 3)
                state = await srv.camera(cam)
                assert state["status"] == "online", state
                assert state["reconnects"] == 0, state
                assert state["bad_frames"] > 0, state
                assert error in (state["last_error"] or ""), state
            text = await srv.metrics()
            good = await srv.camera("good")

    for cam in expected:
        assert metric(text, "motionhub_frames_bad_total", camera=cam) > 0, cam
        assert metric(text, "motionhub_camera_up", camera=cam) == 1, cam
    bad = {cam: metric(text, "motionhub_frames_bad_total", camera=cam) for cam in expected}
    print(f"\nbad frames skipped and counted: {bad}")
    # The bystander never saw a thing.
    assert good["bad_frames"] == 0
    assert good["reconnects"] == 0
    assert good["status"] == "online"
    assert metric(text, "motionhub_frames_processed_total", camera="good") > good_before
