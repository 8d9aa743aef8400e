"""Every source kind delivers frames from a real (simulated) camera, in the promised form."""

from __future__ import annotations

import asyncio
import glob
import itertools
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ingest_harness import (
    SPEC,
    camera,
    poll,
    reader_threads,
    running,
    security,
    silent_server,
    take_frames,
    wait_until,
)
from rel_harness import open_fds

from clients.sim import HttpCamera, RtspCamera, SceneSpec, render_clip
from server.cameras import CameraStatus, Frame, SourceError
from server.cameras.pump import Pump


def _assert_view_of_decoder_buffer(luma: np.ndarray) -> None:
    # The detection image must be the decoder's own Y plane, not a converted copy.
    assert luma.dtype == np.uint8
    assert luma.ndim == 2
    assert not luma.flags.owndata
    assert not luma.flags.writeable


async def test_rtsp_tcp_delivers_luma_frames(rtsp_camera: RtspCamera) -> None:
    async with running(camera(rtsp_camera.url)) as reader:
        frames = await take_frames(reader, 10)
        assert [f.seq for f in frames] == sorted({f.seq for f in frames})
        frame = frames[-1]
        assert (frame.width, frame.height) == (SPEC.width, SPEC.height)
        assert frame.luma.shape == (SPEC.height, SPEC.width)
        _assert_view_of_decoder_buffer(frame.luma)
        assert 0 < frame.mono_time <= time.monotonic()
        assert abs(frame.wall_time - time.time()) < 5
        color = await reader.color_frame()
        assert color is not None
        assert color.shape == (SPEC.height, SPEC.width, 3)
        # The grey image is the luma of the colour one (up to range scaling and rounding).
        bgr = frame.to_bgr().astype(np.float32)
        gray = bgr @ np.array([0.114, 0.587, 0.299], np.float32)
        assert np.corrcoef(gray.ravel(), frame.luma.astype(np.float32).ravel())[0, 1] > 0.99
        status = reader.status
        assert status.state == "online"
        assert status.kind == "rtsp"
        assert (status.width, status.height) == (SPEC.width, SPEC.height)
        assert status.frames >= 10
        assert status.last_error is None
        await asyncio.sleep(1.5)
        assert 10 <= reader.status.fps <= 25


async def test_rtsp_udp_transport(rtsp_camera: RtspCamera) -> None:
    async with running(camera(rtsp_camera.url, rtsp_transport="udp")) as reader:
        frames = await take_frames(reader, 5)
        assert frames[-1].luma.shape == (SPEC.height, SPEC.width)


def _ffmpeg_clip(path: Path, seconds: float) -> Path:
    subprocess.run(
        [
            "ffmpeg", "-v", "error", "-y", "-f", "lavfi",
            "-i", f"testsrc2=size=320x240:rate=15:duration={seconds}",
            "-c:v", "libx264", "-preset", "ultrafast", "-g", "15", "-pix_fmt", "yuv420p", str(path),
        ],
        check=True,
    )  # fmt: skip
    return path


async def test_file_is_paced_to_real_time_and_loops(tmp_path: Path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    clip = _ffmpeg_clip(media / "one-second.mp4", 1.0)
    settings = camera(str(clip), detect={"fps": 60})
    async with running(settings, security(media)) as reader:
        start = time.monotonic()
        frames = await take_frames(reader, 30, within=6)
        elapsed = time.monotonic() - start
        # 30 frames of a 15 fps, 1 s file: real time means about 2 s, and two loops.
        assert elapsed > 1.5
        assert frames[-1].luma.shape == (240, 320)
        _assert_view_of_decoder_buffer(frames[-1].luma)
        assert reader.status.kind == "file"
        assert reader.status.state == "online"


async def test_file_without_loop_ends_with_a_clear_error(tmp_path: Path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    clip = _ffmpeg_clip(media / "short.mp4", 0.5)
    async with running(camera(f"file://{clip}", loop=False), security(media)) as reader:
        await wait_until(reader, lambda s: s.state == "offline", 5, "offline at end of file")
        assert reader.status.last_error == "end of file short.mp4 (loop is off)"
        assert reader.status.frames >= 7
        # No reconnecting to a file that has ended: the thread is gone.
        await asyncio.sleep(0.2)
        assert reader.settings.id not in " ".join(reader_threads())


@pytest.mark.parametrize(
    ("detect_width", "shape"),
    [(320, (180, 320)), (400, (360, 640)), (100, (90, 160)), (80, (45, 80))],
)
async def test_mjpeg_decodes_reduced_but_not_below_detect_width(
    http_camera: HttpCamera, detect_width: int, shape: tuple[int, int]
) -> None:
    async with running(camera(http_camera.mjpeg_url), detect_width=detect_width) as reader:
        frames = await take_frames(reader, 3)
        assert frames[-1].luma.shape == shape
        assert (frames[-1].width, frames[-1].height) == (SPEC.width, SPEC.height)
        assert reader.status.kind == "mjpeg"
        color = await reader.color_frame()
        assert color is not None
        assert color.shape == (SPEC.height, SPEC.width, 3)


async def test_mjpeg_kind_given_explicitly(http_camera: HttpCamera) -> None:
    async with running(camera(http_camera.mjpeg_url, kind="mjpeg")) as reader:
        await take_frames(reader, 3)
        await asyncio.sleep(1.2)
        assert 10 <= reader.status.fps <= 20


@pytest.mark.parametrize("kind", ["auto", "snapshot"])
async def test_snapshot_url_is_polled(http_camera: HttpCamera, kind: str) -> None:
    settings = camera(http_camera.snapshot_url, kind=kind, snapshot_interval=0.2)
    async with running(settings) as reader:
        start = time.monotonic()
        frames = await take_frames(reader, 6)
        elapsed = time.monotonic() - start
        assert 0.6 < elapsed < 3.0  # five intervals of 0.2 s after the first poll
        assert frames[-1].luma.shape == (180, 320)
        assert reader.status.kind == "snapshot"
        color = await reader.color_frame()
        assert color is not None
        assert color.shape == (SPEC.height, SPEC.width, 3)


async def test_snapshot_kind_refuses_an_mjpeg_stream(http_camera: HttpCamera) -> None:
    async with running(camera(http_camera.mjpeg_url, kind="snapshot")) as reader:
        await wait_until(reader, lambda s: s.state == "offline", 5, "offline")
        assert "is an MJPEG stream, not a snapshot URL" in (reader.status.last_error or "")


async def test_rate_limit_hands_over_detect_fps(rtsp_camera: RtspCamera) -> None:
    async with running(camera(rtsp_camera.url, detect={"fps": 5})) as reader:
        await take_frames(reader, 1)
        decoded_before = reader.status.frames
        start = time.monotonic()
        frames = await take_frames(reader, 10)
        elapsed = time.monotonic() - start
        decoded = reader.status.frames - decoded_before
        # 10 frames at 5/s take about 2 s, while all 15 frames a second are decoded.
        assert 1.5 < elapsed < 3.0
        assert decoded > 2 * len(frames)
        # Frames skipped by the rate limit are not "dropped": the consumer kept up.
        assert reader.status.dropped == 0


async def test_slow_consumer_counts_dropped_frames(rtsp_camera: RtspCamera) -> None:
    async with running(camera(rtsp_camera.url, detect={"fps": 15})) as reader:
        seq = 0
        taken = []
        for _ in range(6):
            frame = await reader.next_frame(seq)
            taken.append(frame.seq)
            seq = frame.seq
            await asyncio.sleep(0.3)  # a pipeline far slower than the camera
        gaps = sum(b - a - 1 for a, b in itertools.pairwise(taken))
        # Each skipped sequence number was a frame handed over but replaced unseen.
        assert reader.status.dropped >= gaps - 1
        assert reader.status.dropped >= 5


def counting_analyser(analysed: list[float]) -> Callable[[np.ndarray, float], int]:
    """An analyser that records each frame's time in ``analysed`` and returns how many
    frames it has analysed so far (the frame's ``analysis``)."""

    def analyse(luma: np.ndarray, mono: float) -> int:
        analysed.append(mono)
        return len(analysed)

    return analyse


@dataclass
class Pause:
    """What a reader did while its pipeline, still active, did not take a frame for a while."""

    first: Frame
    """The frame taken before the pause."""
    second: Frame
    """The frame taken after it."""
    analysed_in_pause: int
    dropped_in_pause: int
    analysed_by_second: int
    """Frames analysed since the first was taken, counted when the second was."""
    analyses_at_second: int
    """Frames analysed in all, counted when the second was taken."""
    dropped_at_second: int


async def pause_the_pipeline(url: str, hold: float, seconds: float = 0.8) -> Pause:
    """Take two frames from a 15 fps camera, take none for ``seconds`` (a busy pipeline, still
    active: it asked less than 1 s ago), then take the next one."""
    analysed: list[float] = []
    async with running(camera(url, detect={"fps": 15}), hold=hold) as reader:
        reader.set_analyser(counting_analyser(analysed))
        first = (await take_frames(reader, 2))[-1]
        at_take, dropped_at_take = len(analysed), reader.status.dropped
        await asyncio.sleep(seconds)
        analysed_in_pause = len(analysed) - at_take
        dropped_in_pause = reader.status.dropped - dropped_at_take
        second = await reader.next_frame(first.seq)
        return Pause(
            first=first,
            second=second,
            analysed_in_pause=analysed_in_pause,
            dropped_in_pause=dropped_in_pause,
            analysed_by_second=len(analysed) - at_take,
            analyses_at_second=len(analysed),
            dropped_at_second=reader.status.dropped,
        )


async def test_a_frame_the_pipeline_has_not_taken_stops_further_analysis(
    rtsp_camera: RtspCamera,
) -> None:
    # A hold longer than the test: the frame waiting in the slot is never replaced.
    p = await pause_the_pipeline(rtsp_camera.url, hold=60.0)
    # At most the frame due right after the take (or one analysed as it was taken).
    assert p.analysed_in_pause <= 1
    assert p.dropped_in_pause >= 5  # about 12 frames due in 0.8 s, skipped unanalysed and counted
    # The pipeline gets the frame that was analysed, with its own result: no newer
    # frame replaced it unseen.
    assert p.second.seq == p.first.seq + 1
    assert p.second.analysis == p.analyses_at_second


async def test_a_stuck_pipeline_gets_a_recent_frame_after_the_hold(
    rtsp_camera: RtspCamera,
) -> None:
    p = await pause_the_pipeline(rtsp_camera.url, hold=0.1)
    # Past the hold, newer frames were analysed and replaced the waiting one (every
    # other due frame at 15 fps with a 0.1 s hold), so the pipeline is not handed a
    # frame from the start of its pause; each frame not handed over counts as dropped.
    assert p.analysed_by_second >= 3
    assert p.second.seq >= p.first.seq + 3
    assert p.second.analysis in (p.analyses_at_second, p.analyses_at_second - 1)
    assert p.dropped_at_second >= 5


async def test_readers_of_one_loop_wake_it_through_one_pipe_closed_after_the_last(
    clip: Path,
) -> None:
    with RtspCamera({"a": clip, "b": clip}) as cam:
        before = open_fds()
        async with running(camera(cam.url_for("a"))) as a:
            async with running(camera(cam.url_for("b"))) as b:
                # Both pipelines are handed frames while both cameras run.
                await asyncio.gather(take_frames(a, 5), take_frames(b, 5))
            await take_frames(a, 3)  # the other camera stopping leaves this one's wake-ups
        assert open_fds() <= before


async def test_detect_url_opens_main_stream_on_demand(tmp_path: Path, clip: Path) -> None:
    sub_clip = render_clip(SceneSpec(width=320, height=180, fps=15, seed=7, loop_seconds=4))
    with RtspCamera({"main": clip, "sub": sub_clip}) as cam:
        settings = camera(cam.url_for("main"), detect_url=cam.url_for("sub"))
        async with running(settings, main_idle=0.8) as reader:
            frames = await take_frames(reader, 3)
            assert frames[-1].luma.shape == (180, 320)
            main_thread = f"camera-{settings.id}-main"
            assert main_thread not in reader_threads()  # not opened until asked
            color = await reader.color_frame()
            assert color is not None
            assert color.shape == (SPEC.height, SPEC.width, 3)
            assert main_thread in reader_threads()
            # Unused for main_idle seconds, the main stream closes by itself...
            await poll(lambda: main_thread not in reader_threads(), 5, "main stream closed")
            # ...and opens again on the next request.
            again = await reader.color_frame()
            assert again is not None
            assert again.shape == (SPEC.height, SPEC.width, 3)
            # The pump that closed is let go: one kept per reopening would add up.
            assert reader._main is not None
            assert len(reader._main._pumps) == 1
        assert reader_threads() == []


async def test_no_main_stream_opens_while_the_camera_stops(clip: Path) -> None:
    sub_clip = render_clip(SceneSpec(width=320, height=180, fps=15, seed=7, loop_seconds=4))
    with RtspCamera({"main": clip, "sub": sub_clip}) as cam:
        settings = camera(cam.url_for("main"), detect_url=cam.url_for("sub"))
        async with running(settings, main_idle=30) as reader:
            await take_frames(reader, 1)
            stopping = asyncio.create_task(reader.stop())
            await asyncio.sleep(0)  # the stop has begun and waits for the threads
            # An event's snapshot asked for now must not open the main stream, whose
            # thread would outlive the camera by main_idle.
            assert await reader.color_frame() is None
            await stopping
            assert reader_threads() == []


async def test_stopping_asks_each_reader_thread_to_stop_once(
    clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []
    request_stop = Pump.request_stop

    def counting(pump: Pump) -> None:
        asked.append(pump.thread.name)
        request_stop(pump)

    monkeypatch.setattr(Pump, "request_stop", counting)
    sub_clip = render_clip(SceneSpec(width=320, height=180, fps=15, seed=7, loop_seconds=4))
    with RtspCamera({"main": clip, "sub": sub_clip}) as cam:
        settings = camera(cam.url_for("main"), detect_url=cam.url_for("sub"))
        async with running(settings, main_idle=30) as reader:
            await take_frames(reader, 1)
            assert await reader.color_frame() is not None  # the main stream is open
        assert reader_threads() == []
    main = f"camera-{settings.id}-main"
    assert sorted(asked) == sorted([f"camera-{settings.id}", main])


async def test_v4l2_device() -> None:
    devices = sorted(glob.glob("/dev/video[0-9]*"))
    if not devices:
        pytest.skip("no V4L2 device (/dev/videoN) on this machine")
    async with running(camera(devices[0])) as reader:
        await wait_until(reader, lambda s: s.state != "starting", 10, "started")
        if reader.status.state == "offline":
            pytest.skip(f"{devices[0]} cannot capture here: {reader.status.last_error}")
        frames = await take_frames(reader, 3)
        assert frames[-1].luma.ndim == 2
        assert reader.status.kind == "v4l2"


async def test_status_callbacks_run_on_the_event_loop(rtsp_camera: RtspCamera) -> None:
    seen: list[tuple[CameraStatus, int]] = []
    async with running(camera(rtsp_camera.url), security()) as reader:
        reader.on_status_change(lambda s: seen.append((s, threading.get_ident())))
        await wait_until(reader, lambda s: s.state == "online", 5, "online")
        await asyncio.sleep(0.05)
    assert [s.state for s, _ in seen] == ["online"]
    assert {ident for _, ident in seen} == {threading.get_ident()}


async def test_status_changes_reach_the_loop_through_the_readers_shared_pipe(
    rtsp_camera: RtspCamera, monkeypatch: pytest.MonkeyPatch
) -> None:
    # call_soon_threadsafe holds the GIL through the system call that wakes the loop;
    # the readers' pipe (which frames already use) writes outside it.
    loop = asyncio.get_running_loop()
    loop_thread = threading.get_ident()
    from_threads: list[str] = []
    call_soon_threadsafe = loop.call_soon_threadsafe

    def recording(callback: Callable[..., object], *args: object, **kwargs: Any) -> Any:
        if threading.get_ident() != loop_thread:
            from_threads.append(getattr(callback, "__name__", repr(callback)))
        return call_soon_threadsafe(callback, *args, **kwargs)

    monkeypatch.setattr(loop, "call_soon_threadsafe", recording)
    seen: list[str] = []
    async with running(camera(rtsp_camera.url), security()) as reader:
        reader.on_status_change(lambda s: seen.append(s.state))
        await wait_until(reader, lambda s: s.state == "online", 5, "online")
        await take_frames(reader, 3)
        await poll(lambda: seen == ["online"], 2, "the status callback")
    assert "_dispatch" not in from_threads


async def test_next_frame_is_cancellable_and_fails_after_stop() -> None:
    with silent_server() as port:
        reader_cm = running(camera(f"rtsp://127.0.0.1:{port}/x"))
        reader = await reader_cm.__aenter__()
        try:
            waiting = asyncio.create_task(reader.next_frame(0))
            await asyncio.sleep(0.1)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            pending = asyncio.create_task(reader.next_frame(0))
            await asyncio.sleep(0.1)
        finally:
            await reader_cm.__aexit__(None, None, None)
        with pytest.raises(SourceError, match="stopped"):
            await pending
        assert reader.latest() is None
