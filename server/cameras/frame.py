"""The frame a camera hands to the pipeline: a grey image for detection, colour on demand.

Decoding gives YUV. Its Y plane *is* the grey image detection needs, so for the
usual planar formats :func:`luma_view` returns a NumPy view straight onto the
decoder's buffer: no conversion and no copy. The colour image is produced only
when :meth:`Frame.to_bgr` is called (a snapshot or a live-view request), from the
decoded frame or the JPEG bytes the frame keeps for that purpose.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import av
import numpy as np
from numpy.typing import NDArray

from server.cameras.jpeg import decode_bgr

__all__ = ["ColorSource", "Frame", "luma_view", "to_bgr"]

ColorSource = av.VideoFrame | bytes
"""What a colour image can be made from: a decoded video frame or a JPEG."""

# Formats whose plane 0 is the 8-bit luma (or grey) image.
_PLANAR_LUMA = frozenset(
    (
        "yuv420p",
        "yuvj420p",
        "yuv422p",
        "yuvj422p",
        "yuv444p",
        "yuvj444p",
        "yuv440p",
        "yuvj440p",
        "yuv411p",
        "yuv410p",
        "yuva420p",
        "nv12",
        "nv21",
        "nv16",
        "nv24",
        "gray",
    )
)
# Packed 4:2:2 (what most USB webcams send raw): luma is every other byte.
_PACKED_LUMA_OFFSET = {"yuyv422": 0, "yvyu422": 0, "uyvy422": 1}


def luma_view(frame: av.VideoFrame) -> NDArray[np.uint8]:
    """The 8-bit luma of ``frame`` as a read-only 2-D array, zero-copy where possible.

    The array may be strided (rows padded to the decoder's line size); it keeps the
    frame's buffer alive for as long as it exists. Unusual formats (10-bit, RGB...)
    fall back to a converted copy.
    """
    name = frame.format.name
    plane = frame.planes[0]
    line = plane.line_size
    array: NDArray[np.uint8]
    if name in _PLANAR_LUMA and line > 0:
        array = np.frombuffer(memoryview(plane), np.uint8).reshape(-1, line)[
            : frame.height, : frame.width
        ]
    elif name in _PACKED_LUMA_OFFSET and line > 0:
        rows = np.frombuffer(memoryview(plane), np.uint8).reshape(-1, line)[: frame.height]
        start = _PACKED_LUMA_OFFSET[name]
        array = rows[:, start : start + 2 * frame.width : 2]
    else:
        array = cast("NDArray[np.uint8]", frame.reformat(format="gray").to_ndarray())
    array.flags.writeable = False
    return array


@dataclass(frozen=True, slots=True, eq=False)
class Frame:
    """One captured frame of one camera.

    ``luma`` is the grey image for detection: full size for decoded video, reduced
    by 2, 4 or 8 for JPEG sources (never below the detector's working width).
    ``width`` and ``height`` are always the camera's full frame size.
    """

    seq: int
    """Increases by one for every frame the reader hands over (starts at 1)."""
    luma: NDArray[np.uint8]
    wall_time: float
    """Capture time, ``time.time()`` (for people and event timestamps)."""
    mono_time: float
    """Capture time, ``time.monotonic()`` (for latencies and rates)."""
    width: int
    height: int
    color_source: ColorSource
    analysis: Any = None
    """What the reader's analyser made of ``luma`` on the reader thread (see
    :meth:`server.cameras.CameraReader.set_analyser`), or None."""

    def to_bgr(self) -> NDArray[np.uint8]:
        """The full-size colour image (converted now; a few ms for 1080p, so not on the loop)."""
        return to_bgr(self.color_source)


def to_bgr(color: ColorSource) -> NDArray[np.uint8]:
    """Convert a decoded frame or decode a JPEG to full-size BGR. Raises BadFrame."""
    if isinstance(color, bytes):
        return decode_bgr(color)
    return cast("NDArray[np.uint8]", color.to_ndarray(format="bgr24"))
