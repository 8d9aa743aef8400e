"""Rendering and caching: H.264 clips, JPEG loops, imported video files."""

from __future__ import annotations

import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from sim_harness import decode_jpeg

from clients.sim import (
    Scene,
    SceneSpec,
    SimulatorError,
    cache_dir,
    prepare_video,
    render_clip,
    render_jpegs,
)
from clients.sim.jpegloop import JpegLoop

SPEC = SceneSpec(width=320, height=180, fps=10, seed=2, loop_seconds=3)


def probe(path: Path) -> tuple[str, int, int, int, list[int]]:
    """Codec, width, height, frame count and keyframe indices of a video file."""
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        packets = [p for p in c.demux(stream) if p.dts is not None]
        keys = [i for i, p in enumerate(packets) if p.is_keyframe]
        ctx = stream.codec_context
        name, width, height = ctx.name, ctx.width, ctx.height
    with av.open(str(path)) as c:
        n = sum(1 for _ in c.decode(video=0))
    return name, width, height, n, keys


def test_render_clip_is_h264_with_a_keyframe_every_second(tmp_path: Path) -> None:
    clip = render_clip(SPEC, cache=tmp_path)
    codec, w, h, n, keys = probe(clip)
    assert (codec, w, h) == ("h264", 320, 180)
    assert n == SPEC.frame_count == 30
    assert keys == [0, 10, 20]
    with av.open(str(clip)) as c:
        stream = c.streams.video[0]
        assert stream.average_rate == 10
        assert stream.codec_context.pix_fmt == "yuv420p"
        # No B-frames: decode order is presentation order, as from a live camera.
        pts = [p.pts or 0 for p in c.demux(stream) if p.dts is not None]
        assert pts == sorted(pts)


def test_clip_frames_match_the_scene(tmp_path: Path) -> None:
    clip = render_clip(SPEC, cache=tmp_path)
    scene = Scene(SPEC)
    with av.open(str(clip)) as c:
        for i, frame in enumerate(c.decode(video=0)):
            if i in (0, 15):
                decoded = frame.to_ndarray(format="bgr24").astype(np.int16)
                assert np.abs(decoded - scene.frame(i)).mean() < 6  # lossy, but the same picture


def test_renders_are_cached_by_parameters(tmp_path: Path) -> None:
    first = render_clip(SPEC, cache=tmp_path)
    mtime = first.stat().st_mtime_ns
    started = time.perf_counter()
    assert render_clip(SPEC, cache=tmp_path) == first
    assert time.perf_counter() - started < 0.05
    assert first.stat().st_mtime_ns == mtime
    other = render_clip(SPEC.model_copy(update={"seed": 3}), cache=tmp_path)
    longer = render_clip(SPEC, seconds=4, cache=tmp_path)
    assert len({first, other, longer}) == 3
    assert probe(longer)[3] == 40
    # Only finished files are left: no temporary files from the renders.
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in (first, other, longer)
    )


def test_cache_dir_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOTIONHUB_SIM_CACHE", str(tmp_path / "a"))
    assert render_clip(SPEC).parent == tmp_path / "a"
    monkeypatch.delenv("MOTIONHUB_SIM_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert render_clip(SPEC).parent == tmp_path / "xdg" / "motionhub" / "sim"
    # A default location that cannot be created falls back to the temporary directory.
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    assert cache_dir().parent == tmp_path / "tmp"


def test_jpeg_loop_holds_every_frame_as_a_valid_jpeg(tmp_path: Path) -> None:
    path = render_jpegs(SPEC, cache=tmp_path)
    with JpegLoop(path) as loop:
        assert (len(loop), loop.fps, loop.width, loop.height) == (30, 10.0, 320, 180)
        scene = Scene(SPEC)
        for i in (0, 29):
            img = decode_jpeg(loop.frame(i))
            assert img is not None
            assert img.shape == (180, 320, 3)
            assert np.abs(img.astype(np.int16) - scene.frame(i)).mean() < 6
        assert loop.frame(30) == loop.frame(0)  # wraps around
    assert render_jpegs(SPEC, cache=tmp_path) == path


def write_video(
    path: Path, codec: str, frames: int, fps: int = 10, options: dict[str, str] | None = None
) -> None:
    """A small test video made from the scene (so no footage is needed)."""
    scene = Scene(SceneSpec(width=160, height=90, fps=fps))
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=fps)
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height, stream.pix_fmt = 160, 90, "yuv420p"
        stream.options = dict(options or {})
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(scene.frame(i), format="bgr24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def test_prepare_video_remuxes_camera_like_h264_and_transcodes_the_rest(tmp_path: Path) -> None:
    camera_like = tmp_path / "camera.mkv"
    write_video(camera_like, "libx264", 20, options={"x264-params": "bframes=0"})
    with_b_frames = tmp_path / "b.mkv"
    write_video(with_b_frames, "libx264", 20, options={"x264-params": "bframes=2"})
    mpeg4 = tmp_path / "in.avi"
    write_video(mpeg4, "mpeg4", 20)
    cache = tmp_path / "cache"
    outputs = [prepare_video(p, cache=cache) for p in (camera_like, with_b_frames, mpeg4)]
    for out in outputs:
        codec, w, h, n, _keys = probe(out)
        assert (codec, w, h, n) == ("h264", 160, 90, 20)
        assert out.suffix == ".mp4"
        with av.open(str(out)) as c:
            assert not c.streams.video[0].codec_context.has_b_frames
    # Remuxing copies the packets: the same H.264 bytes come out.
    with av.open(str(camera_like)) as a, av.open(str(outputs[0])) as b:
        assert [bytes(p) for p in a.demux(video=0) if p.size] == [
            bytes(p) for p in b.demux(video=0) if p.size
        ]
    shortened = prepare_video(mpeg4, max_seconds=1, cache=cache)
    assert probe(shortened)[3] == 10
    loop = render_jpegs(mpeg4, cache=cache)
    with JpegLoop(loop) as frames:
        assert (len(frames), frames.width, frames.fps) == (20, 160, 10.0)


def test_bad_video_files_give_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SimulatorError, match="not found"):
        prepare_video(tmp_path / "missing.mp4", cache=tmp_path)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video" * 100)
    with pytest.raises(SimulatorError, match=r"junk\.mp4"):
        prepare_video(junk, cache=tmp_path)
    with pytest.raises(SimulatorError, match=r"junk\.mp4"):
        render_jpegs(junk, cache=tmp_path)
