"""The bench's readings of a process's resident memory from ``/proc``: the memory suite's
breakdown and the harness's RSS come from one reading of ``status``."""

from __future__ import annotations

import os

from server.bench.memory import KEYS, memory
from server.bench.probe import proc_rss, proc_status_bytes


def test_status_sizes_are_the_kb_fields_in_bytes() -> None:
    sizes = proc_status_bytes(os.getpid())
    assert {"VmRSS", "RssAnon", "RssFile", "VmHWM"} <= set(sizes)
    assert "Threads" not in sizes  # a count, not a size
    assert "Pid" not in sizes
    assert all(v % 1024 == 0 for v in sizes.values())
    assert sizes["RssAnon"] + sizes["RssFile"] <= sizes["VmRSS"] + sizes.get("RssShmem", 0)


def test_rss_and_the_memory_breakdown_agree() -> None:
    rss = proc_rss(os.getpid())
    reading = memory(os.getpid())
    assert set(reading) == set(KEYS)
    assert rss > 0
    assert proc_rss() > 0  # the default reads this process too
    assert abs(reading["rss"] - rss) < 16 * 1024 * 1024
    assert abs(reading["anon"] + reading["file"] - reading["rss"]) < 1024 * 1024
    assert 0 < reading["uss"] <= reading["pss"] <= reading["rss"]
