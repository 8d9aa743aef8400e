"""Helpers for the camera simulator's own tests (fixtures are in conftest.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import av
import cv2
import numpy as np
import numpy.typing as npt

from clients.sim import SceneSpec

# Always moving (still_seconds=0), small and short so everything renders in well under 1 s.
MOVING = SceneSpec(width=320, height=180, fps=15, seed=11, still_seconds=0, loop_seconds=6)

Gray = npt.NDArray[np.uint8]


def rtsp_frames(url: str, count: int, transport: str = "tcp", timeout: float = 10.0) -> list[Gray]:
    """Decode ``count`` frames from an RTSP URL with PyAV, as grey images."""
    frames: list[Gray] = []
    deadline = time.monotonic() + timeout
    with av.open(url, options={"rtsp_transport": transport}, timeout=(5.0, 5.0)) as container:
        for frame in container.decode(video=0):
            frames.append(np.asarray(frame.to_ndarray(format="gray"), np.uint8))
            if len(frames) >= count:
                break
            assert time.monotonic() < deadline, f"only {len(frames)} frames in {timeout} s"
    assert len(frames) == count, f"stream ended after {len(frames)} frames"
    return frames


def ends(items: Iterator[object], limit: int, errors: tuple[type[BaseException], ...]) -> bool:
    """Whether ``items`` ends (runs out, or raises one of ``errors``) within ``limit`` items."""
    try:
        for _ in range(limit):
            next(items)
    except errors:
        return True
    return False


def changed_fraction(a: Gray, b: Gray, threshold: int = 30) -> float:
    """Fraction of pixels that differ by more than ``threshold`` (sensor noise stays below)."""
    diff = cv2.absdiff(a, b)
    return float(np.count_nonzero(diff > threshold)) / diff.size


def decode_jpeg(data: bytes) -> npt.NDArray[np.uint8] | None:
    """The decoded image, or None when OpenCV cannot decode ``data``."""
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return None if img is None else np.asarray(img, np.uint8)


def mjpeg_parts(data: bytes, boundary: str) -> list[bytes]:
    """The bodies of the complete parts in a chunk of a multipart/x-mixed-replace stream.

    Parses the framing strictly (boundary line, headers, Content-Length), the way a
    camera client must, and stops at the first part that is not complete yet.
    """
    parts: list[bytes] = []
    marker = f"--{boundary}\r\n".encode()
    pos = data.find(marker)
    while pos >= 0:
        head_end = data.find(b"\r\n\r\n", pos)
        if head_end < 0:
            break
        headers = dict(
            line.split(": ", 1)
            for line in data[pos + len(marker) : head_end].decode("latin-1").split("\r\n")
        )
        assert headers["Content-Type"] == "image/jpeg"
        length = int(headers["Content-Length"])
        start = head_end + 4
        if start + length + 2 > len(data):
            break
        parts.append(data[start : start + length])
        assert data[start + length : start + length + 2] == b"\r\n"
        pos = start + length + 2
        assert data.startswith(marker, pos) or pos == len(data), "bytes between parts"
        if pos == len(data):
            break
    return parts


def children() -> set[int]:
    """Pids of this process's children, zombies included."""
    pids: set[int] = set()
    for task in Path("/proc/self/task").iterdir():
        text = (task / "children").read_text().split()
        pids.update(int(p) for p in text)
    return pids
