"""A looped sequence of pre-encoded JPEG frames in one file, read back through mmap.

The HTTP camera serves these bytes as they are, so serving costs no rendering or JPEG
encoding per client and per frame. File layout::

    b"MHJPEGLOOP1\\n"  a JSON line padded to 128 bytes: {"fps", "width", "height", "count"}
    then ``count`` times: 4-byte big-endian length, JPEG bytes
"""

from __future__ import annotations

import json
import mmap
import os
import struct
import uuid
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

__all__ = ["JpegLoop", "write_jpeg_loop"]

MAGIC = b"MHJPEGLOOP1\n"
_LEN = struct.Struct(">I")
_HEADER_SIZE = 128


def write_jpeg_loop(
    path: Path, jpegs: Iterable[bytes], *, fps: float, width: int, height: int
) -> None:
    """Write ``jpegs`` to ``path`` atomically (a temporary file renamed into place)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with tmp.open("wb") as out:
            # The frame count is known only at the end: reserve a fixed-size header.
            out.write(MAGIC + b" " * (_HEADER_SIZE - 1) + b"\n")
            count = 0
            for jpeg in jpegs:
                out.write(_LEN.pack(len(jpeg)))
                out.write(jpeg)
                count += 1
            if count == 0:
                raise ValueError("a JPEG loop needs at least one frame")
            header = json.dumps({"fps": fps, "width": width, "height": height, "count": count})
            out.seek(len(MAGIC))
            out.write(header.encode().ljust(_HEADER_SIZE - 1))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class JpegLoop:
    """Random access to the frames of a file written by :func:`write_jpeg_loop`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with path.open("rb") as f:
            self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            if self._map[: len(MAGIC)] != MAGIC:
                raise ValueError(f"{path} is not a JPEG loop file")
            end = self._map.find(b"\n", len(MAGIC))
            meta = json.loads(self._map[len(MAGIC) : end])
            self.fps = float(meta["fps"])
            self.width = int(meta["width"])
            self.height = int(meta["height"])
            self._offsets: list[tuple[int, int]] = []
            pos = end + 1
            for _ in range(int(meta["count"])):
                (n,) = _LEN.unpack_from(self._map, pos)
                self._offsets.append((pos + _LEN.size, n))
                pos += _LEN.size + n
            if pos != len(self._map):
                raise ValueError(f"{path} is damaged: {len(self._map) - pos} stray bytes")
        except Exception:
            self._map.close()
            raise

    def __len__(self) -> int:
        return len(self._offsets)

    def frame(self, index: int) -> bytes:
        """The JPEG bytes of frame ``index`` (wraps around)."""
        start, n = self._offsets[index % len(self._offsets)]
        return self._map[start : start + n]

    def close(self) -> None:
        """Release the mapping."""
        self._map.close()

    def __enter__(self) -> JpegLoop:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
