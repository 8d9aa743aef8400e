"""CPU slots: at most one camera decoding per core at a time.

Eight cameras decoding at once on two cores share them round-robin, so every frame finishes
late: each decode is stretched by the others, and so is the detection that follows it. A
reader thread holds a slot from the start of a decode until its frame has been analysed and
handed over, so at most as many frames are in work as there are cores, and each one
finishes, in order, as soon as its own work is done. The total work is the same; only the
order changes. Network reads and waits happen outside a slot.

``MOTIONHUB_DECODE_SLOTS`` sets the number of slots (0 = no limit); by default it is the
number of CPUs this process may run on.
"""

from __future__ import annotations

import os
import threading

__all__ = ["DECODE_SLOTS", "CpuSlots", "slot_count"]


def slot_count() -> int:
    """Slots from ``MOTIONHUB_DECODE_SLOTS``, else the CPUs this process may use."""
    value = os.environ.get("MOTIONHUB_DECODE_SLOTS", "")
    if value.isdigit():
        return int(value)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class CpuSlots:
    """A counting gate that each thread holds at most once (``hold`` twice is one hold)."""

    def __init__(self, count: int) -> None:
        self.count = count
        self._gate = threading.BoundedSemaphore(count) if count > 0 else None
        self._local = threading.local()

    def hold(self) -> None:
        """Wait for a slot, unless this thread holds one already."""
        if self._gate is not None and not getattr(self._local, "held", False):
            self._gate.acquire()
            self._local.held = True

    def release(self) -> None:
        """Give this thread's slot back, if it holds one."""
        if self._gate is not None and getattr(self._local, "held", False):
            self._local.held = False
            self._gate.release()


DECODE_SLOTS = CpuSlots(slot_count())
"""The process's slots, shared by every camera reader."""
