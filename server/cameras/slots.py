"""CPU slots: at most one camera per core between a decode and its frame's hand-over.

They gate the FFmpeg-decoded sources (RTSP, files, devices), whose decoding is the heavy part
of a reader's work; MJPEG and snapshot readers do not take a slot.

Eight cameras decoding at once on two cores share them round-robin, so every frame finishes
late: each decode is stretched by the others, and so is the detection that follows it. A
reader thread holds a slot from the start of a decode until its frame has been analysed and
handed over, so at most as many frames are in work as there are cores, and each one
finishes, in turn, as soon as its own work is done. The total work is the same; only the
order changes. Network reads and waits happen outside a slot.

Off by default. ``MOTIONHUB_DECODE_SLOTS=N`` sets N slots; ``auto`` as many as the CPUs the
process may run on, counted again every few seconds, so a process moved to more or fewer
cores (``taskset``) follows. The trade, measured by ``motionhub bench`` (bench/RESULTS.md):
with eight 1080p cameras on two cores, ``auto`` cut the latency suite's p99 by about a
quarter, but it also cut the scale suite's peak throughput on two cores by about 5 %
(a reader that waits for the GIL or is preempted keeps its slot, and its core idles), so
the suite's 2-core / 1-core ratio fell from 1.89x to 1.61x.

The slots are tokens in a :class:`queue.SimpleQueue`: taking and returning one is a C call
that waits without the GIL, where :class:`threading.Semaphore` runs Python code under it.
"""

from __future__ import annotations

import os
import queue
import threading
import time

__all__ = ["DECODE_SLOTS", "CpuSlots", "fixed_slots"]

RECHECK_SECONDS = 2.0
"""How often the CPUs the process may use are counted again."""


def fixed_slots() -> int | None:
    """The count ``MOTIONHUB_DECODE_SLOTS`` sets: 0 (no limit) when unset, None for ``auto``
    (follow the usable CPUs)."""
    value = os.environ.get("MOTIONHUB_DECODE_SLOTS", "").strip().lower()
    if value == "auto":
        return None
    if value and not value.isdigit():
        raise ValueError(f"MOTIONHUB_DECODE_SLOTS must be a whole number or 'auto', not {value!r}")
    return int(value) if value else 0


def usable_cpus() -> int:
    """The CPUs this process may run on now."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class CpuSlots:
    """A gate of ``count`` slots (None: as many as :func:`usable_cpus`; 0: no limit) that
    each thread holds at most once: ``hold`` twice is one hold, ``release`` without one is
    nothing."""

    def __init__(self, count: int | None = None) -> None:
        self._fixed = count
        self._off = count == 0
        """No limit: every frame's hold and release return at once (the default)."""
        self._tokens: queue.SimpleQueue[None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._issued = 0
        self._excess = 0
        """Tokens to take out of circulation as they come back (after the count shrank)."""
        self._checked = -RECHECK_SECONDS
        self._local = threading.local()

    @property
    def count(self) -> int:
        """The number of slots now (0: no limit)."""
        return self._issued - self._excess

    def _wanted(self) -> int:
        return self._fixed if self._fixed is not None else usable_cpus()

    def _resize(self) -> None:
        now = time.monotonic()
        if now - self._checked < RECHECK_SECONDS:
            return
        with self._lock:
            self._checked = now
            wanted = self._wanted()
            current = self._issued - self._excess
            if wanted > current:
                # Tokens still owed back are kept instead of being taken out, then new ones.
                kept = min(wanted - current, self._excess)
                self._excess -= kept
                for _ in range(wanted - current - kept):
                    self._issued += 1
                    self._tokens.put(None)
            elif wanted < current:
                self._excess += current - wanted
                while self._excess:  # free tokens go at once, held ones as they come back
                    try:
                        self._tokens.get_nowait()
                    except queue.Empty:
                        break
                    self._excess -= 1
                    self._issued -= 1

    def hold(self) -> None:
        """Wait for a slot, unless this thread holds one already."""
        if self._off or getattr(self._local, "held", False):
            return
        self._resize()
        if self._issued:
            self._tokens.get()
            self._local.held = True

    def release(self) -> None:
        """Give this thread's slot back, if it holds one."""
        if self._off or not getattr(self._local, "held", False):
            return
        self._local.held = False
        if self._excess:
            with self._lock:
                if self._excess:
                    self._excess -= 1
                    self._issued -= 1
                    return
        self._tokens.put(None)


DECODE_SLOTS = CpuSlots(fixed_slots())
"""The process's slots, shared by every camera reader."""
