"""Sampling profiles of the server under test with py-spy, summarised for the bench.

Two recordings of the same running process:

* ``--gil``: only stacks of the thread holding the GIL. Their count over the number of
  sampling ticks is the share of time the GIL is held: the ceiling on how far the one
  process can scale with threads.
* default: stacks of every thread running Python code (idle threads left out), to see
  where the CPU goes, per kind of thread.

py-spy is optional (``pip install py-spy``); without it the summary says so.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

__all__ = ["profile", "py_spy_available"]

RATE = 100


def _py_spy() -> str | None:
    """The ``py-spy`` command: the one next to this Python first, then PATH.

    ``pip install py-spy`` in a virtual environment puts it beside the interpreter, which
    is not on PATH unless the environment is activated.
    """
    beside = shutil.which("py-spy", path=str(Path(sys.executable).parent))
    return beside or shutil.which("py-spy")


def py_spy_available() -> bool:
    """Whether a ``py-spy`` command is found (beside this Python or on PATH)."""
    return _py_spy() is not None


def _record(py_spy: str, pid: int, seconds: float, gil: bool) -> list[tuple[list[str], int]]:
    with tempfile.TemporaryDirectory(prefix="motionhub-pyspy-") as tmp:
        out = Path(tmp) / "profile.txt"
        argv = [py_spy, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds)))]
        argv += ["--rate", str(RATE), "--format", "raw", "--output", str(out), "--nonblocking"]
        if gil:
            argv.append("--gil")
        subprocess.run(argv, check=True, capture_output=True, timeout=seconds + 60)
        stacks = []
        for line in out.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if stack and count.isdigit():
                stacks.append((stack.split(";"), int(count)))
        return stacks


def _kind(frames: list[str]) -> str:
    """Which part of the server a stack belongs to."""
    text = ";".join(frames)
    if "server/cameras/" in text or "cameras/pump.py" in text:
        return "camera reader threads"
    if "threading.py" in text and "asyncio" not in text:
        return "other threads (storage, outbox)"
    if "concurrent/futures" in text:
        return "worker threads"
    return "event loop (main thread)"


def _summary(stacks: list[tuple[list[str], int]], ticks: float) -> dict[str, Any]:
    total = sum(n for _, n in stacks)
    by_kind: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for frames, n in stacks:
        by_kind[_kind(frames)] += n
        if frames:
            leaf[frames[-1]] += n
        for frame in set(frames):
            if "server/" in frame or "detector/" in frame:
                inclusive[frame] += n
    return {
        "samples": total,
        "share_of_time": round(total / ticks, 3) if ticks else 0.0,
        "by_thread_kind": {k: round(v / ticks, 3) for k, v in by_kind.most_common()},
        "top_self": [[f, round(n / ticks, 4)] for f, n in leaf.most_common(15)],
        "top_inclusive_own_code": [[f, round(n / ticks, 4)] for f, n in inclusive.most_common(15)],
    }


def profile(pid: int, seconds: float) -> dict[str, Any]:
    """Record ``pid`` twice for ``seconds`` each (GIL holders, then all running threads).

    Shares are fractions of wall time (1.0 = one core busy for the whole recording).
    """
    py_spy = _py_spy()
    if py_spy is None:
        return {"available": False, "note": "py-spy not installed (pip install py-spy)"}
    ticks = seconds * RATE
    try:
        gil = _summary(_record(py_spy, pid, seconds, gil=True), ticks)
        running = _summary(_record(py_spy, pid, seconds, gil=False), ticks)
    except (subprocess.SubprocessError, OSError) as exc:
        return {"available": False, "note": f"py-spy failed: {exc}"}
    return {"available": True, "rate_hz": RATE, "seconds": seconds, "gil": gil, "running": running}
