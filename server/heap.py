"""Keep the memory of freed video frames from staying with the process (glibc only).

A decoded 1080p frame, its colour conversion for a snapshot and FFmpeg's packet buffers are
megabytes each, allocated and freed by several threads. glibc serves such blocks with their
own memory mapping, returned to the system on free, but only until the first one is freed:
from then on it raises its mapping threshold to that size, so every later frame lands in a
per-thread heap that holds on to it. With one heap per reader thread, each camera then keeps
tens of megabytes it no longer uses, and the total drifts as cameras reconnect. A fixed
threshold (which turns that adjustment off) keeps large blocks mapped and returned.

Smaller blocks (packets, parser and decoder state) still live in those heaps, and a heap
only shrinks from its top: when a camera's connection ends, the pages its reader freed in
the middle of a heap stay with the process until they happen to be reused. Releasing the
free pages of every heap once the connection is closed hands them back at once (about
1.5 MB per 1080p camera), and for good while the camera stays away.
"""

from __future__ import annotations

import ctypes
import os
import sys
from typing import Any

__all__ = ["MMAP_THRESHOLD", "keep_large_blocks_mapped", "release_free_memory"]

MMAP_THRESHOLD = 128 * 1024
"""Bytes from which an allocation gets its own mapping (glibc's initial default)."""
_M_MMAP_THRESHOLD = -3
_ENV = "MALLOC_MMAP_THRESHOLD_"


def _libc_function(name: str) -> Any:
    """``name`` from the process's C library, or None if it has none (not glibc)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None


def keep_large_blocks_mapped(threshold: int = MMAP_THRESHOLD) -> bool:
    """Fix glibc's mapping threshold at ``threshold`` bytes for this process.

    Returns whether it was applied: not on other C libraries, and not when the user already
    chose a value with ``MALLOC_MMAP_THRESHOLD_``. Call once, early, before cameras start.
    """
    if _ENV in os.environ:
        return False
    mallopt = _libc_function("mallopt")  # musl has none
    if mallopt is None:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, threshold))


_malloc_trim: Any = _libc_function("malloc_trim")
if _malloc_trim is not None:
    _malloc_trim.argtypes = [ctypes.c_size_t]
    _malloc_trim.restype = ctypes.c_int


def release_free_memory() -> bool:
    """Return the free pages of every malloc heap of the process to the system.

    Call after letting go of something large, such as a camera's decoder when its connection
    ends. It walks every heap, holding each one's lock in turn, so it is for such occasional
    events, not for every frame; it runs without the GIL. A no-op on C libraries other than
    glibc. Returns whether it ran.
    """
    if _malloc_trim is None:
        return False
    _malloc_trim(0)
    return True
