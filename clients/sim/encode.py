"""Render scenes (or import video files) once, into cached files the servers stream as-is.

* :func:`render_clip`: a scene as an H.264 MP4 (libx264, no B-frames, one keyframe a
  second, yuv420p), for the RTSP server.
* :func:`prepare_video`: a user's video file as an H.264 MP4 (remuxed when it already is
  H.264, transcoded otherwise).
* :func:`render_jpegs`: a scene or a video file as a loop of JPEG frames, for the HTTP
  camera.

Results are cached under :func:`cache_dir`, named by a hash of everything that
determines their bytes, so repeated test runs and restarts never encode twice.
Files are written to a temporary name and renamed into place, so concurrent renders of
the same clip from several processes are safe.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path
from typing import TypeVar

import av
import cv2
import numpy as np

from clients.sim.jpegloop import write_jpeg_loop
from clients.sim.scene import Frame, Scene, SceneSpec

__all__ = [
    "SimulatorError",
    "cache_dir",
    "prepare_video",
    "render_clip",
    "render_jpegs",
]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

CACHE_ENV = "MOTIONHUB_SIM_CACHE"
JPEG_QUALITY = 80
# Bump when the encoder settings change, so stale cached files are not reused.
_ENCODE_VERSION = 1


class SimulatorError(RuntimeError):
    """A simulated camera could not be prepared or started; the message says why."""


def cache_dir(override: Path | None = None) -> Path:
    """The directory for rendered files, created if needed.

    ``override``, else ``$MOTIONHUB_SIM_CACHE``, else ``$XDG_CACHE_HOME/motionhub/sim``
    (``~/.cache/motionhub/sim`` when XDG_CACHE_HOME is unset). When that default cannot
    be created (a system user without a home, as in a container), a directory under
    the system temporary directory is used instead.
    """
    if override is None:
        override = Path(os.environ[CACHE_ENV]) if os.environ.get(CACHE_ENV) else None
    if override is not None:
        override.mkdir(parents=True, exist_ok=True)
        return override
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    path = Path(base) / "motionhub" / "sim"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        path = Path(tempfile.gettempdir()) / f"motionhub-sim-{os.getuid()}"
        path.mkdir(mode=0o700, exist_ok=True)
    return path


def _tmp_for(path: Path) -> Path:
    return path.with_name(f".{path.stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}{path.suffix}")


def _loop_spec(spec: SceneSpec, seconds: float | None) -> SceneSpec:
    return spec if seconds is None else spec.model_copy(update={"loop_seconds": float(seconds)})


def _rate(fps: float) -> Fraction:
    return Fraction(fps).limit_denominator(1001)


def render_clip(
    spec: SceneSpec,
    seconds: float | None = None,
    *,
    cache: Path | None = None,
    preset: str = "veryfast",
    crf: int = 23,
) -> Path:
    """Render one loop of ``spec`` to an H.264 MP4 and return its cached path.

    ``seconds`` overrides ``spec.loop_seconds`` (the clip is meant to be looped, so a
    multiple of ``spec.period`` gives a seamless loop). The stream has a keyframe every
    second, so a client that connects or reconnects gets a picture within a second.
    """
    spec = _loop_spec(spec, seconds)
    key = _key("h264", spec.key(), preset, crf)
    path = cache_dir(cache) / f"scene-{spec.width}x{spec.height}-{spec.fps:g}fps-{key}.mp4"
    if path.exists():
        return path
    started = time.perf_counter()
    scene = Scene(spec)
    tmp = _tmp_for(path)
    try:
        _encode_h264(tmp, (scene.frame(i) for i in range(spec.frame_count)), spec, preset, crf)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    log.info(
        "rendered %s (%d frames) in %.1f s",
        path.name,
        spec.frame_count,
        time.perf_counter() - started,
    )
    return path


def _prefetched(frames: Iterator[_T], depth: int = 4) -> Iterator[_T]:
    """Produce ``frames`` on a worker thread, so rendering overlaps encoding.

    OpenCV and libx264 both release the GIL, so this keeps both cores busy. One worker
    calls ``next`` in submission order, so the generator is never entered twice.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sim-render") as pool:
        pending = deque(pool.submit(next, frames, None) for _ in range(depth))
        while (item := pending.popleft().result()) is not None:
            pending.append(pool.submit(next, frames, None))
            yield item


def _encode_h264(
    path: Path, frames: Iterator[Frame], spec: SceneSpec, preset: str, crf: int
) -> None:
    gop = max(1, round(spec.fps))
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=_rate(spec.fps))
        stream.width = spec.width
        stream.height = spec.height
        stream.pix_fmt = "yuv420p"
        stream.options = {
            "preset": preset,
            "tune": "zerolatency",
            "crf": str(crf),
            # A fixed one-second GOP and no B-frames: what IP cameras send, and what
            # lets the RTSP server start every client on a keyframe.
            "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0",
        }
        planes = (np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420), np.uint8) for bgr in frames)
        for i, yuv in enumerate(_prefetched(planes)):
            frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
            frame.pts = i
            frame.time_base = Fraction(1) / _rate(spec.fps)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def _file_key(video: Path) -> str:
    if not video.is_file():
        raise SimulatorError(f"video file not found: {video}")
    st = video.stat()
    return _key(str(video.resolve()), st.st_size, st.st_mtime_ns)


def _key(*parts: object) -> str:
    blob = json.dumps([_ENCODE_VERSION, *parts], default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _open_video(video: Path) -> av.container.InputContainer:
    if not video.is_file():
        raise SimulatorError(f"video file not found: {video}")
    try:
        container = av.open(str(video))
    except av.FFmpegError as exc:
        raise SimulatorError(f"cannot open video file {video}: {exc}") from exc
    if not container.streams.video:
        container.close()
        raise SimulatorError(f"{video} has no video stream")
    return container


def prepare_video(
    video: Path,
    *,
    max_seconds: float | None = None,
    cache: Path | None = None,
    preset: str = "veryfast",
) -> Path:
    """Return a cached H.264 MP4 of ``video`` for the RTSP server.

    An H.264 stream without B-frames is remuxed without re-encoding; anything else is
    transcoded with the same settings as :func:`render_clip` (no B-frames, a keyframe
    every second). ``max_seconds`` keeps only the start.
    """
    key = _key("video", _file_key(video), max_seconds, preset)
    path = cache_dir(cache) / f"video-{video.stem}-{key}.mp4"
    if path.exists():
        return path
    tmp = _tmp_for(path)
    try:
        with _open_video(video) as inp:
            src = inp.streams.video[0]
            ctx = src.codec_context
            # Remux only camera-like H.264: B-frames (typical of files, rare from
            # cameras) are re-encoded away, so clients get frames in display order.
            if ctx.name == "h264" and not ctx.has_b_frames and max_seconds is None:
                _remux(inp, src, tmp)
            else:
                fps = float(src.average_rate or src.guessed_rate or 25)
                width = src.codec_context.width - src.codec_context.width % 2
                height = src.codec_context.height - src.codec_context.height % 2
                spec = SceneSpec(width=width, height=height, fps=fps)
                frames = (f[:height, :width] for f in _decoded_bgr(inp, src, fps, max_seconds))
                _encode_h264(tmp, frames, spec, preset, 23)
        os.replace(tmp, path)
    except av.FFmpegError as exc:
        raise SimulatorError(f"cannot convert video file {video}: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    log.info("prepared %s from %s", path.name, video)
    return path


def _remux(inp: av.container.InputContainer, src: av.VideoStream, dest: Path) -> None:
    with av.open(str(dest), "w", format="mp4") as out:
        dst = out.add_stream_from_template(src)
        for packet in inp.demux(src):
            if packet.size == 0:  # the demuxer's final flush packet
                continue
            if packet.dts is None:  # Matroska stores no DTS; without B-frames it is the PTS
                packet.dts = packet.pts
            packet.stream = dst
            out.mux(packet)


def _decoded_bgr(
    inp: av.container.InputContainer,
    src: av.VideoStream,
    fps: float,
    max_seconds: float | None,
) -> Iterator[Frame]:
    limit = None if max_seconds is None else max(1, round(max_seconds * fps))
    for n, frame in enumerate(inp.decode(src)):
        if limit is not None and n >= limit:
            return
        yield np.asarray(frame.to_ndarray(format="bgr24"), np.uint8)


def render_jpegs(
    source: SceneSpec | Path,
    seconds: float | None = None,
    *,
    cache: Path | None = None,
    quality: int = JPEG_QUALITY,
) -> Path:
    """Render one loop of a scene, or the frames of a video file, as a cached JPEG loop.

    For a video file, ``seconds`` limits how much of it is used (default: all of it).
    Read the result with :class:`clients.sim.jpegloop.JpegLoop`.
    """
    params = [cv2.IMWRITE_JPEG_QUALITY, quality]

    def encode(frames: Iterator[Frame]) -> Iterator[bytes]:
        for bgr in _prefetched(frames):
            ok, buf = cv2.imencode(".jpg", bgr, params)
            if not ok:
                raise SimulatorError("JPEG encoding failed")
            yield buf.tobytes()

    if isinstance(source, SceneSpec):
        spec = _loop_spec(source, seconds)
        key = _key("jpeg", spec.key(), quality)
        path = cache_dir(cache) / f"scene-{spec.width}x{spec.height}-{spec.fps:g}fps-{key}.mjpg"
        if not path.exists():
            scene = Scene(spec)
            frames = (scene.frame(i) for i in range(spec.frame_count))
            write_jpeg_loop(
                path, encode(frames), fps=spec.fps, width=spec.width, height=spec.height
            )
            log.info("rendered %s (%d frames)", path.name, spec.frame_count)
        return path
    key = _key("jpeg-video", _file_key(source), seconds, quality)
    path = cache_dir(cache) / f"video-{source.stem}-{key}.mjpg"
    if path.exists():
        return path
    try:
        with _open_video(source) as inp:
            src = inp.streams.video[0]
            fps = float(src.average_rate or src.guessed_rate or 25)
            w, h = src.codec_context.width, src.codec_context.height
            write_jpeg_loop(
                path, encode(_decoded_bgr(inp, src, fps, seconds)), fps=fps, width=w, height=h
            )
    except av.FFmpegError as exc:
        raise SimulatorError(f"cannot decode video file {source}: {exc}") from exc
    log.info("rendered %s from %s", path.name, source)
    return path
