"""The RTSP camera: real GStreamer server, real PyAV clients."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest
from sim_harness import MOVING, changed_fraction, ends, rtsp_frames

from clients.sim import RtspCamera, Scene, SimulatorError, free_port, render_clip
from clients.sim.process import port_open
from clients.sim.rtsp import SYSTEM_PYTHON

pytestmark = [
    pytest.mark.usefixtures("no_leftover_children"),
    pytest.mark.skipif(not Path(SYSTEM_PYTHON).exists(), reason="needs the system python3-gi"),
]


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_stream_decodes_with_the_right_size_and_moves(moving_clip: Path, transport: str) -> None:
    with RtspCamera(moving_clip, path="cam1") as cam:
        assert cam.url == f"rtsp://127.0.0.1:{cam.port}/cam1"
        started = time.monotonic()
        frames = rtsp_frames(cam.url, 10, transport)
        # A client starts on a keyframe, so the picture comes at once (PyAV's probing
        # of the stream takes most of this).
        assert time.monotonic() - started < 6
    assert all(f.shape == (MOVING.height, MOVING.width) for f in frames)
    assert changed_fraction(frames[0], frames[-1]) > 0.003


def test_clients_start_at_the_live_position_on_a_keyframe(moving_clip: Path) -> None:
    scene = Scene(MOVING)
    with RtspCamera(moving_clip) as cam:
        before = time.time()
        first = rtsp_frames(cam.url, 1)[0]
        after = time.time()
    # Which frame of the loop is it? (grey, as decoded; the scene is BGR)
    errors = [
        np.abs(first.astype(np.int16) - scene.frame(i).mean(axis=2)).mean()
        for i in range(MOVING.frame_count)
    ]
    index = int(np.argmin(errors))
    assert errors[index] < 8
    assert index % round(MOVING.fps) == 0  # a keyframe: one per second
    # The last keyframe before the wall-clock position at the moment the server set up
    # the session, which happened between `before` and `after`.
    window = range(int((before - 1) * MOVING.fps), int(after * MOVING.fps) + 1)
    assert index in {i % MOVING.frame_count for i in window}, (index, window)


def test_stream_keeps_going_across_the_loop_end(tmp_path: Path) -> None:
    clip = render_clip(MOVING, seconds=1, cache=tmp_path)  # 15 frames, looped
    times: list[float | None] = []
    with (
        RtspCamera(clip) as cam,
        av.open(cam.url, options={"rtsp_transport": "tcp"}, timeout=(5.0, 5.0)) as c,
    ):
        for frame in c.decode(video=0):
            times.append(frame.time)
            if len(times) == 40:
                break
    # FFmpeg gives the very first RTSP frame no timestamp (it has no RTCP sync yet).
    steps = np.diff([t for t in times[1:] if t is not None])
    assert len(steps) == 38
    # Timestamps keep increasing by one frame period, also where the clip wraps around.
    assert np.allclose(steps, 1 / MOVING.fps, atol=0.01), steps


def test_stop_is_an_outage_and_start_comes_back_on_the_same_port(moving_clip: Path) -> None:
    cam = RtspCamera(moving_clip, path="cam1")
    with cam:
        first_pid = cam.pid
        container = av.open(cam.url, options={"rtsp_transport": "tcp"}, timeout=(5.0, 5.0))
        with container:
            frames = container.decode(video=0)
            next(frames)
            cam.stop()
            assert not cam.running
            assert not port_open("127.0.0.1", cam.port)
            # The open session breaks: the client sees the end or an error, not a hang.
            started = time.monotonic()
            assert ends(frames, 100, (StopIteration, av.FFmpegError))
            assert time.monotonic() - started < 7
        with pytest.raises(av.FFmpegError):
            av.open(cam.url, options={"rtsp_transport": "tcp"}, timeout=(2.0, 2.0))
        cam.start()
        assert cam.pid != first_pid
        assert cam.url.endswith(f":{cam.port}/cam1")
        assert len(rtsp_frames(cam.url, 3)) == 3


def test_basic_auth_rejects_missing_and_wrong_credentials(moving_clip: Path) -> None:
    secret = "p@ss:w/rd"  # characters that must be quoted in a URL
    with RtspCamera(moving_clip, path="cam1", user="admin", password=secret) as cam:
        assert "admin" not in cam.url
        assert cam.url_with_credentials.startswith("rtsp://admin:p%40ss%3Aw%2Frd@127.0.0.1:")
        wrong = cam.url.replace("rtsp://", "rtsp://admin:nope@")
        for url in (cam.url, wrong):
            with pytest.raises(av.HTTPUnauthorizedError):
                av.open(url, options={"rtsp_transport": "tcp"}, timeout=(5.0, 5.0))
        assert len(rtsp_frames(cam.url_with_credentials, 3)) == 3
        # The password is passed through the environment, never on the command line.
        cmdline = Path(f"/proc/{cam.pid}/cmdline").read_bytes()
        assert secret.encode() not in cmdline


def test_several_mounts_and_clients_at_once(moving_clip: Path) -> None:
    other = render_clip(MOVING.model_copy(update={"seed": 99}))
    results: dict[str, list[np.ndarray]] = {}
    errors: list[BaseException] = []
    with RtspCamera({"a": moving_clip, "b": other}, port=free_port()) as cam:
        assert set(cam.urls) == {"a", "b"}

        def watch(key: str, path: str, transport: str) -> None:
            try:
                results[key] = rtsp_frames(cam.url_for(path), 5, transport)
            except BaseException as exc:  # reported by the main thread below
                errors.append(exc)

        clients = [("a1", "a", "tcp"), ("a2", "a", "udp"), ("b1", "b", "tcp")]
        threads = [threading.Thread(target=watch, args=c) for c in clients]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert not errors, errors
    assert set(results) == {"a1", "a2", "b1"}
    # Different clips on different mounts: a different background layout.
    assert changed_fraction(results["a1"][0], results["b1"][0]) > 0.2


def test_shared_media_serves_clients_that_come_and_go(moving_clip: Path) -> None:
    with RtspCamera(moving_clip, shared=True) as cam:
        first = rtsp_frames(cam.url, 3)
        results: list[list[np.ndarray]] = []
        threads = [
            threading.Thread(target=lambda: results.append(rtsp_frames(cam.url, 20)))
            for _ in range(2)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        cam.kill()  # abrupt, like a power cut
        assert not port_open("127.0.0.1", cam.port)
        cam.start()
        again = rtsp_frames(cam.url, 3)
    assert len(first) == len(again) == 3
    assert [len(r) for r in results] == [20, 20]


def test_a_file_that_is_not_h264_fails_with_the_servers_message(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video " * 1000)
    with pytest.raises(SimulatorError, match=r"(?s)exited with status 1.*junk\.mp4 as H.264"):
        RtspCamera(junk, ready_timeout=15).start()


def test_a_port_in_use_is_reported(moving_clip: Path) -> None:
    with RtspCamera(moving_clip) as cam:
        with pytest.raises(SimulatorError, match="already in use"):
            RtspCamera(moving_clip, port=cam.port).start()
        assert cam.running
