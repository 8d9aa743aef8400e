"""JPEG checks and reduced-size decoding for MJPEG and snapshot cameras.

Detection needs only a grey image a few hundred pixels wide, and libjpeg can
decode at 1/2, 1/4 or 1/8 scale for a fraction of the cost of a full decode
(the IDCT is simply skipped for the dropped frequencies). So each JPEG is
decoded straight to grey at the largest reduction that still leaves the image at
least as wide as the detector's working width. The colour image is decoded only
when someone asks for it.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from server.cameras.errors import BadFrame

__all__ = ["decode_bgr", "decode_gray", "jpeg_size", "reduction_flag"]

_SOI = b"\xff\xd8"
_EOI = b"\xff\xd9"
# Start-of-frame markers carry the image size: baseline, extended, progressive,
# lossless and the arithmetic-coded variants (not DHT C4, JPG C8 or DAC CC).
_SOF = frozenset((0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF))
# A size header is only a claim: a few hundred bytes can announce 30000x30000, and the
# colour decode behind a snapshot or the live view would then take gigabytes. 8K is 33 MP.
_MAX_PIXELS = 50_000_000
_REDUCTIONS = (
    (8, cv2.IMREAD_REDUCED_GRAYSCALE_8),
    (4, cv2.IMREAD_REDUCED_GRAYSCALE_4),
    (2, cv2.IMREAD_REDUCED_GRAYSCALE_2),
)


def jpeg_size(data: bytes) -> tuple[int, int]:
    """``(width, height)`` of a complete JPEG, from its start-of-frame header.

    Raises :class:`BadFrame` for anything that is not a whole JPEG: no SOI marker,
    no size header, or no EOI marker at the end (a truncated transfer); and for a size
    over 50 megapixels. libjpeg would "decode" a truncated file by padding it with
    grey, which a motion detector would see as a huge change, so truncation must be
    caught here.
    """
    if not data:
        raise BadFrame("empty image (0 bytes)")
    if not data.startswith(_SOI):
        raise BadFrame("not a JPEG image (garbage data)")
    if not data.rstrip(b"\r\n\x00 ").endswith(_EOI):
        raise BadFrame("truncated JPEG image")
    i, end = 2, len(data) - 9
    while i < end:
        if data[i] != 0xFF:
            break
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _SOF:
            height = int.from_bytes(data[i + 5 : i + 7], "big")
            width = int.from_bytes(data[i + 7 : i + 9], "big")
            if width and height:
                if width * height > _MAX_PIXELS:
                    raise BadFrame(
                        f"JPEG image too large ({width}x{height}, over "
                        f"{_MAX_PIXELS // 1_000_000} megapixels)"
                    )
                return width, height
            break
        if marker == 0xDA:  # start of scan: no size header before the image data
            break
        i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    raise BadFrame("corrupt JPEG image (no size header)")


def reduction_flag(width: int, detect_width: int) -> tuple[int, int]:
    """The ``(factor, imread flag)`` that keeps ``width / factor >= detect_width``."""
    for factor, flag in _REDUCTIONS:
        if -(-width // factor) >= detect_width:
            return factor, flag
    return 1, cv2.IMREAD_GRAYSCALE


def decode_gray(data: bytes, width: int, detect_width: int) -> NDArray[np.uint8]:
    """Decode ``data`` (a JPEG ``width`` pixels wide) to grey, as reduced as allowed."""
    _, flag = reduction_flag(width, detect_width)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    if image is None:
        raise BadFrame("corrupt JPEG image (cannot decode)")
    return np.asarray(image, dtype=np.uint8)


def decode_bgr(data: bytes) -> NDArray[np.uint8]:
    """Decode ``data`` to a full-size BGR image."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise BadFrame("corrupt JPEG image (cannot decode)")
    return np.asarray(image, dtype=np.uint8)
