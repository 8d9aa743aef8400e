"""Keep the memory of freed video frames from staying with the process (glibc only).

A decoded 1080p frame, its colour conversion for a snapshot and FFmpeg's packet buffers are
megabytes each, allocated and freed by several threads. glibc serves such blocks with their
own memory mapping, returned to the system on free, but only until the first one is freed:
from then on it raises its mapping threshold to that size, so every later frame lands in a
per-thread heap that holds on to it. With one heap per reader thread, each camera then keeps
tens of megabytes it no longer uses, and the total drifts as cameras reconnect. A fixed
threshold (which turns that adjustment off) keeps large blocks mapped and returned.
"""

from __future__ import annotations

import ctypes
import os
import sys

__all__ = ["MMAP_THRESHOLD", "keep_large_blocks_mapped"]

MMAP_THRESHOLD = 128 * 1024
"""Bytes from which an allocation gets its own mapping (glibc's initial default)."""
_M_MMAP_THRESHOLD = -3
_ENV = "MALLOC_MMAP_THRESHOLD_"


def keep_large_blocks_mapped(threshold: int = MMAP_THRESHOLD) -> bool:
    """Fix glibc's mapping threshold at ``threshold`` bytes for this process.

    Returns whether it was applied: not on other C libraries, and not when the user already
    chose a value with ``MALLOC_MMAP_THRESHOLD_``. Call once, early, before cameras start.
    """
    if not sys.platform.startswith("linux") or _ENV in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, threshold))
