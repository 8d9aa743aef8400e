"""HTTP MJPEG streams (``multipart/x-mixed-replace``) through FFmpeg's ``mpjpeg`` demuxer.

FFmpeg speaks the HTTP (basic and digest auth, timeouts, TLS) and splits the
multipart body; it is tolerant of the quirks real cameras have (missing leading
CRLF, a boundary that differs from the one announced, parts without a length).
Each part arrives as one packet holding a JPEG, which is checked here and decoded
later, reduced, by OpenCV, and only if the rate limit wants the frame.

When the demuxer meets bytes that are not a part header it reports invalid data
and has consumed one line; asking again resumes after it. So garbage is skipped
line by line until the next boundary, and counted once per run.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import av
import av.error

from server.cameras.errors import BadFrame, SourceError, describe
from server.cameras.jpeg import jpeg_size
from server.cameras.policy import PROTOCOL_WHITELIST
from server.cameras.sources.base import JpegSample, Sample, Source
from server.cameras.tls import ffmpeg_tls_options

__all__ = ["USER_AGENT", "MjpegSource"]

USER_AGENT = "motionhub"
# A run of garbage this long (in skipped lines) is not a camera having a bad
# moment: it also bounds the loop if the demuxer keeps failing at end of input.
_MAX_GARBAGE_RUN = 100_000
_HEARTBEAT = 64  # during a garbage run, let the reader check stop/stall this often


class MjpegSource(Source):
    """An MJPEG-over-HTTP camera."""

    kind = "mjpeg"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._container: av.container.InputContainer | None = None
        self._stream: av.VideoStream | None = None

    def open(self) -> None:
        options = {
            "protocol_whitelist": PROTOCOL_WHITELIST["mjpeg"],
            "user_agent": USER_AGENT,
            # FFmpeg's socket I/O timeout: what bounds every read once the stream is open.
            "timeout": self.socket_timeout_us(),
            "analyzeduration": "1000000",
            **ffmpeg_tls_options(self.settings),
        }
        self._container, self._stream = self.open_container(
            "mpjpeg",
            options,
            refused=SourceError(
                f"{self.plan.where} redirected to or asked for a protocol that is not allowed"
            ),
            no_video=f"no JPEG images in the MJPEG stream at {self.plan.where}",
        )

    def close(self) -> None:
        container, self._container, self._stream = self._container, None, None
        if container is not None:
            container.close()

    def samples(self) -> Generator[Sample | BadFrame | None, None, None]:
        container, stream = self._container, self._stream
        if container is None or stream is None:
            raise SourceError("source is not open")
        garbage = 0
        while not self.stop.is_set():
            try:
                for packet in container.demux(stream):
                    if packet.size == 0:
                        continue
                    garbage = 0
                    data = bytes(packet)
                    try:
                        width, height = jpeg_size(data)
                    except BadFrame as bad:
                        yield bad
                        continue
                    yield JpegSample(data, width, height)
                    if self.stop.is_set():
                        return
            except av.error.InvalidDataError:
                garbage += 1
                if garbage == 1:
                    yield BadFrame("garbage in the MJPEG stream skipped")
                elif garbage >= _MAX_GARBAGE_RUN:
                    raise SourceError(
                        f"the MJPEG stream at {self.plan.where} carries no valid parts"
                    ) from None
                elif garbage % _HEARTBEAT == 0:
                    yield None
                continue
            except Exception as exc:
                raise SourceError(
                    describe(exc, where=self.plan.where, doing="reading", timeout=self.read_timeout)
                ) from None
            raise SourceError(f"stream ended ({self.plan.where})")
