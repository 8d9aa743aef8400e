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
process may run on (its affinity, and its cgroup's CPU quota, such as Docker's ``--cpus``),
counted again every few seconds, so a process moved to more or fewer cores (``taskset``)
follows. A bad value stops ``motionhub serve`` (and demo, check, bench) with a one-line error
(:func:`fixed_slots` raises; importing this module never does).

The trade, measured by ``motionhub bench`` (bench/RESULTS.md): with eight 1080p cameras on
two cores, ``auto`` cut the latency suite's p99 by about a quarter, but it also cut the scale
suite's peak throughput on two cores by about 5 % (a reader that waits for the GIL or is
preempted keeps its slot, and its core idles), so the suite's 2-core / 1-core ratio fell
from 1.89x to 1.61x.

The slots are tokens in a :class:`queue.SimpleQueue`: taking and returning one is a C call
that waits without the GIL, where :class:`threading.Semaphore` runs Python code under it.
"""

from __future__ import annotations

import math
import os
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["DECODE_SLOTS", "CpuSlots", "cpu_quota", "fixed_slots", "usable_cpus"]

RECHECK_SECONDS = 2.0
"""How often the CPUs the process may use are counted again."""


def fixed_slots() -> int | None:
    """The count ``MOTIONHUB_DECODE_SLOTS`` sets: 0 (no limit) when unset, None for ``auto``
    (follow the usable CPUs)."""
    value = os.environ.get("MOTIONHUB_DECODE_SLOTS", "").strip().lower()
    if value == "auto":
        return None
    if value and not (value.isascii() and value.isdigit()):
        raise ValueError(f"MOTIONHUB_DECODE_SLOTS must be a whole number or 'auto', not {value!r}")
    return int(value) if value else 0


CGROUP_ROOT = Path("/sys/fs/cgroup")
"""Where the cgroup hierarchies are mounted (v2 alone, or v1 controllers in subfolders)."""


def usable_cpus() -> int:
    """The CPUs this process may run on now: its affinity, capped by its cgroup's quota."""
    affinity = getattr(os, "sched_getaffinity", None)
    cpus = len(affinity(0)) if affinity else (os.cpu_count() or 1)
    quota = cpu_quota()
    return cpus if quota is None else max(1, min(cpus, math.ceil(quota)))


def cpu_quota(
    root: Path = CGROUP_ROOT, membership: Path = Path("/proc/self/cgroup")
) -> float | None:
    """CPUs' worth of run time per period that the process's cgroups allow (the tightest
    of its cgroup and their parents), or None without a quota or off Linux.

    ``membership`` lists the process's cgroups (``hierarchy:controllers:path`` lines). Reads
    cgroup v2's ``cpu.max`` and cgroup v1's ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``. A
    cgroup outside the process's cgroup namespace (a path with ``..``) is not visible here,
    so it counts as no quota.
    """
    try:
        lines = membership.read_text().splitlines()
    except OSError:
        return None
    limits: list[float] = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3 or ".." in Path(parts[2]).parts:
            continue
        _, controllers, path = parts
        if not controllers:  # cgroup v2: one hierarchy, at the root or at "unified"
            for mount in (root, root / "unified"):
                limits += _quotas(mount, path, _v2_quota)
        elif "cpu" in controllers.split(","):
            limits += _quotas(root / controllers, path, _v1_quota)
    return min(limits, default=None)


def _quotas(mount: Path, path: str, read: Callable[[Path], float | None]) -> list[float]:
    """The quotas set on ``path`` and its parents, up to the mount's root."""
    folder = mount / path.lstrip("/")
    found: list[float] = []
    while True:
        quota = read(folder)
        if quota is not None:
            found.append(quota)
        if folder == mount or mount not in folder.parents:
            return found
        folder = folder.parent


def _v2_quota(folder: Path) -> float | None:
    try:
        quota, period = (folder / "cpu.max").read_text().split()
        if quota == "max":
            return None
        share = int(quota) / int(period)
    except (OSError, ValueError, ZeroDivisionError):
        return None
    return share if share > 0 else None


def _v1_quota(folder: Path) -> float | None:
    try:
        quota = int((folder / "cpu.cfs_quota_us").read_text())
        period = int((folder / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if quota <= 0 or period <= 0 else quota / period


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


def _from_environment() -> CpuSlots:
    try:
        return CpuSlots(fixed_slots())
    except ValueError:
        # Every command that runs cameras (serve, demo, check, bench) refuses to start with
        # it first, with a one-line error (server.cli); importing must not fail.
        return CpuSlots(0)


DECODE_SLOTS = _from_environment()
"""The process's slots, shared by every camera reader."""
