"""Drawing motion boxes and zones on a colour frame, and encoding it as JPEG.

CPU-bound (a 1080p encode takes milliseconds): callers run these in a worker thread.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt

from detector import Polygon, Zone
from server.messages import Box

__all__ = ["annotate", "encode_jpeg", "placeholder_jpeg"]

_BOX = (0, 0, 255)
_ZONE = (0, 200, 255)
_MASK = (128, 128, 128)


def _thickness(frame: npt.NDArray[np.uint8]) -> int:
    return max(1, round(int(frame.shape[1]) / 480))


def _poly_px(points: Sequence[tuple[float, float]], w: int, h: int) -> npt.NDArray[np.int32]:
    return np.array([[round(x * (w - 1)), round(y * (h - 1))] for x, y in points], dtype=np.int32)


def annotate(
    frame: npt.NDArray[np.uint8],
    boxes: Sequence[Box],
    zones: Sequence[Zone] = (),
    masks: Sequence[Polygon] = (),
    active_zones: Sequence[str] = (),
) -> npt.NDArray[np.uint8]:
    """A copy of the BGR ``frame`` with normalised ``boxes``, zone and mask outlines drawn."""
    out = frame.copy()
    h, w = out.shape[:2]
    t = _thickness(out)
    for mask in masks:
        cv2.polylines(out, [_poly_px(mask, w, h)], True, _MASK, t)
    for zone in zones:
        pts = _poly_px(zone.points, w, h)
        colour = _BOX if zone.name in active_zones else _ZONE
        cv2.polylines(out, [pts], True, colour, t)
        x, y = int(pts[:, 0].min()), int(pts[:, 1].min())
        cv2.putText(
            out, zone.name, (x + 3, y + 14 * t), cv2.FONT_HERSHEY_SIMPLEX, 0.45 * t, colour, t
        )
    for x1, y1, x2, y2 in boxes:
        p1 = (round(x1 * (w - 1)), round(y1 * (h - 1)))
        p2 = (round(x2 * (w - 1)), round(y2 * (h - 1)))
        cv2.rectangle(out, p1, p2, _BOX, t + 1)
    return out


def encode_jpeg(frame: npt.NDArray[np.uint8], quality: int = 85) -> bytes:
    """JPEG bytes of a BGR or grey ``frame``."""
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return bytes(buf.tobytes())


def placeholder_jpeg(text: str, width: int = 320, height: int = 180) -> bytes:
    """A dark JPEG with a line of text, for a camera that has no frame yet."""
    img = np.full((height, width, 3), 32, dtype=np.uint8)
    cv2.putText(img, text, (10, height // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (200, 200, 200), 1)
    return encode_jpeg(img, 70)
