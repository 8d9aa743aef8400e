"""FFmpeg-decoded sources through PyAV: RTSP(S) streams, video files and V4L2 devices.

PyAV releases the GIL while FFmpeg reads and decodes, hands back frames in their
native YUV, and takes per-open options, which is what keeps the detection path at
the decoder's own speed: the Y plane is used as is, with no colour conversion.
"""

from __future__ import annotations

import os
import time
from collections.abc import Generator, Iterator
from typing import Any

import av
import av.error

from server.cameras.errors import BadFrame, SourceError, describe
from server.cameras.policy import FILE_FORMATS, PROTOCOL_WHITELIST, SourceKind
from server.cameras.slots import DECODE_SLOTS
from server.cameras.sources.base import Sample, Source, VideoSample
from server.cameras.tls import certificate_problem, ffmpeg_tls_options

__all__ = ["VideoSource", "decoder_threads"]

_LATE_REBASE = 1.0  # a file reader this far behind its clock restarts the clock instead of racing


def decoder_threads() -> int:
    """FFmpeg decoder threads per camera: one, unless ``MOTIONHUB_DECODER_THREADS`` says
    otherwise (0 lets FFmpeg choose).

    One thread decodes a 1080p H.264 stream at about 170 frames/s on this class of
    machine, far above any camera's rate, so extra threads would not add frames.
    They would add memory (each frame thread keeps its own reference frames:
    about 19 MB per 1080p camera with one thread, 27 MB with two, 33 MB with FFmpeg's
    automatic count) and a frame of latency per thread. With several cameras, the
    cores are used by decoding cameras in parallel instead.
    """
    value = os.environ.get("MOTIONHUB_DECODER_THREADS", "")
    return int(value) if value.isdigit() else 1


class VideoSource(Source):
    """An RTSP stream, a video file (paced to real time, optionally looped) or a V4L2 device."""

    def __init__(self, *args: Any, kind: SourceKind, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.kind = kind
        self._container: av.container.InputContainer | None = None
        self._stream: av.VideoStream | None = None

    def _options(self) -> tuple[str | None, dict[str, str]]:
        options = {"protocol_whitelist": PROTOCOL_WHITELIST[self.kind]}
        if self.kind == "rtsp":
            options.update(
                rtsp_transport=self.settings.rtsp_transport,
                # FFmpeg's socket I/O timeout bounds every read once the stream is open.
                # Half the read timeout: when an RTSP stream stops, FFmpeg may first wait
                # one socket timeout, hand out the packets it still had queued, and then
                # wait a second one before it reports the error.
                timeout=self.socket_timeout_us(0.5),
                # A live stream's parameters are in the SDP and first keyframe; the
                # default 5 s of analysis only delays going online.
                analyzeduration="1000000",
                # Let UDP reordering wait at most a frame or two instead of 0.5 s of packets.
                max_delay="200000",
            )
            if self.settings.rtsp_transport == "udp":
                options["buffer_size"] = str(4 << 20)
            if self._tls:
                options.update(ffmpeg_tls_options(self.settings))
            return "rtsp", options
        if self.kind == "file":
            options["format_whitelist"] = FILE_FORMATS
            return None, options
        return "v4l2", options

    @property
    def _tls(self) -> bool:
        """Whether the stream comes over TLS (rtsps://)."""
        return self.plan.target.startswith("rtsps:")

    def open(self) -> None:
        fmt, options = self._options()
        try:
            container, stream = self.open_container(
                fmt,
                options,
                refused=SourceError(self._refused(), retry=self.kind != "file"),
                no_video=f"no video stream in {self.plan.where}",
            )
        except SourceError:
            untrusted = certificate_problem(self.plan, self.settings) if self._tls else None
            if untrusted is not None:
                raise untrusted from None
            raise
        if stream.codec_context is None:
            container.close()
            raise SourceError(f"no decoder for the video codec of {self.plan.where}", retry=False)
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = decoder_threads()
        self._container, self._stream = container, stream

    def _refused(self) -> str:
        if self.kind == "file":
            return (
                f"{self.plan.where} is not a plain video file "
                "(playlists, concat scripts and image sequences are refused)"
            )
        return f"{self.plan.where} asked for a protocol or format that is not allowed"

    def close(self) -> None:
        container, self._container, self._stream = self._container, None, None
        if container is not None:
            container.close()

    def samples(self) -> Generator[Sample | BadFrame | None, None, None]:
        container, stream = self._container, self._stream
        if container is None or stream is None:
            raise SourceError("source is not open")
        pace = self.kind == "file"
        clock: float | None = None  # monotonic time of media time 0 for pacing
        while True:
            delivered = 0
            for frame in self._frames(container, stream):
                if isinstance(frame, BadFrame):
                    yield frame
                    continue
                if pace:
                    media = frame.time if frame.time is not None else delivered / 25.0
                    now = time.monotonic()
                    if clock is None or now - (clock + media) > _LATE_REBASE:
                        clock = now - media
                    delay = clock + media - now
                    if delay > 0:
                        # No slot while waiting for the frame's time; one again to hand it over.
                        DECODE_SLOTS.release()
                        if self.stop.wait(delay):
                            return
                        DECODE_SLOTS.hold()
                delivered += 1
                yield VideoSample(frame)
                if self.stop.is_set():
                    return
            if self.kind != "file":
                raise SourceError(f"stream ended ({self.plan.where})")
            if not self.settings.loop:
                raise SourceError(f"end of file {self.plan.where} (loop is off)", retry=False)
            if delivered == 0:
                raise SourceError(f"no decodable video frames in {self.plan.where}", retry=False)
            container.seek(0)
            stream.codec_context.flush_buffers()
            clock = None

    def _frames(
        self, container: av.container.InputContainer, stream: av.VideoStream
    ) -> Iterator[av.VideoFrame | BadFrame]:
        """Decoded frames until the end of the stream; read failures raise SourceError."""
        packets = container.demux(stream)
        while True:
            asked = time.monotonic()
            try:
                packet = next(packets)
            except StopIteration:
                return
            except Exception as exc:
                reason = describe(
                    exc,
                    where=self.plan.where,
                    doing="reading",
                    timeout=self.read_timeout,
                    elapsed=time.monotonic() - asked,
                )
                raise SourceError(reason) from None
            DECODE_SLOTS.hold()  # given back by the reader once the frame is handed over
            try:
                frames = packet.decode()
            except av.error.FFmpegError:
                # A broken packet; the decoder conceals or resyncs at the next keyframe.
                yield BadFrame("corrupt video data skipped")
                continue
            for frame in frames:
                if frame.is_corrupt:
                    yield BadFrame("corrupt video frame skipped")
                else:
                    yield frame
