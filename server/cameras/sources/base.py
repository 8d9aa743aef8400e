"""What every camera source provides to the reader thread."""

from __future__ import annotations

import abc
import threading
import time
from collections.abc import Generator

import av
import av.error
import numpy as np
from numpy.typing import NDArray

from server.cameras.errors import BadFrame, SourceError, describe
from server.cameras.frame import ColorSource, luma_view
from server.cameras.jpeg import decode_gray
from server.cameras.policy import SourceKind, SourcePlan
from server.config import CameraSettings

__all__ = ["JpegSample", "Sample", "Source", "VideoSample"]


class Sample(abc.ABC):
    """A frame as it comes out of a source, before the reader decides to use it.

    Getting the grey image may cost real work (decoding a JPEG), so it is done only
    for frames the rate limit lets through.
    """

    __slots__ = ("color", "height", "width")

    def __init__(self, color: ColorSource, width: int, height: int) -> None:
        self.color = color
        self.width = width
        self.height = height

    @abc.abstractmethod
    def luma(self, detect_width: int) -> NDArray[np.uint8]:
        """The grey image for detection, at least ``detect_width`` wide (unless the
        frame is narrower). Raises :class:`BadFrame`."""


class VideoSample(Sample):
    """A frame decoded by FFmpeg; its luma is a view of the Y plane."""

    __slots__ = ()

    def __init__(self, frame: av.VideoFrame) -> None:
        super().__init__(frame, frame.width, frame.height)

    def luma(self, detect_width: int) -> NDArray[np.uint8]:
        assert isinstance(self.color, av.VideoFrame)
        return luma_view(self.color)


class JpegSample(Sample):
    """A JPEG whose structure (markers, size) was checked but which is not decoded yet."""

    __slots__ = ()

    def luma(self, detect_width: int) -> NDArray[np.uint8]:
        assert isinstance(self.color, bytes)
        return decode_gray(self.color, self.width, detect_width)


class Source(abc.ABC):
    """One connection to a camera: :meth:`open`, iterate :meth:`samples`, :meth:`close`.

    Every blocking call is bounded by the camera's open or read timeout, and
    waits between frames use ``stop`` so that stopping is prompt.
    """

    kind: SourceKind

    def __init__(self, plan: SourcePlan, settings: CameraSettings, stop: threading.Event) -> None:
        self.plan = plan
        self.settings = settings
        self.stop = stop

    @property
    def read_timeout(self) -> float:
        """Longest wait for data once open: the read timeout, or the stall limit if shorter."""
        return min(self.settings.read_timeout, self.settings.stall_timeout)

    def socket_timeout_us(self, share: float = 1.0) -> str:
        """FFmpeg's socket I/O timeout: ``share`` of the read timeout, in microseconds,
        as an option value."""
        return str(int(self.read_timeout * share * 1_000_000))

    def open_container(
        self,
        fmt: str | None,
        options: dict[str, str],
        refused: SourceError,
        no_video: str,
    ) -> tuple[av.container.InputContainer, av.VideoStream]:
        """Open ``plan.target`` with FFmpeg and return it with its first video stream.

        ``refused`` is raised when FFmpeg's whitelists reject the URL or a redirect;
        every other failure becomes a readable :class:`SourceError`.
        """
        started = time.monotonic()
        try:
            container = av.open(
                self.plan.target,
                format=fmt,
                container_options=options,
                # PyAV's timer only for opening: during reads its check takes the GIL
                # on every socket wait (measured: 3-6% more CPU per frame), and FFmpeg's
                # own socket timeout (in ``options``) already bounds each read.
                timeout=(self.settings.open_timeout, None),
            )
        except av.error.ArgumentError:
            # FFmpeg's answer when a protocol or format whitelist refuses.
            raise refused from None
        except Exception as exc:
            raise SourceError(
                describe(
                    exc,
                    where=self.plan.where,
                    doing="opening",
                    timeout=self.settings.open_timeout,
                    elapsed=time.monotonic() - started,
                )
            ) from None
        if not container.streams.video:
            container.close()
            raise SourceError(no_video)
        return container, container.streams.video[0]

    @abc.abstractmethod
    def open(self) -> None:
        """Connect and check the stream. Raises :class:`SourceError`."""

    @abc.abstractmethod
    def samples(self) -> Generator[Sample | BadFrame | None, None, None]:
        """Frames as they arrive, with a :class:`BadFrame` for each one skipped and
        ``None`` now and then while nothing usable arrives (so the reader can check
        its stall limit and stop flag).

        Ends only by raising :class:`SourceError` (the stream ended or failed) or
        because ``stop`` was set.
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Release the connection and everything it holds; safe to call twice."""
