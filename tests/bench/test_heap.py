"""The glibc heap settings: frame-sized blocks mapped, free pages handed back."""

from __future__ import annotations

import ctypes
import platform
import sys
import threading

import pytest

from server.bench.probe import proc_status_bytes
from server.heap import keep_large_blocks_mapped, release_free_memory

glibc_only = pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="glibc only"
)


@glibc_only
def test_applied_on_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    assert keep_large_blocks_mapped() is True


def test_a_users_own_choice_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert keep_large_blocks_mapped() is False


@glibc_only
def test_freed_heap_pages_go_back_to_the_system() -> None:
    # Blocks below the mapping threshold live in a malloc heap. The last one, kept, pins
    # the heap's top, so freeing them leaves a free hole in the middle of the heap
    # that stays resident until released. They are made on their own thread, which
    # gets its own heap, as a camera's reader thread does.
    libc = ctypes.CDLL(None)
    libc.malloc.argtypes, libc.malloc.restype = [ctypes.c_size_t], ctypes.c_void_p
    libc.free.argtypes, libc.free.restype = [ctypes.c_void_p], None
    size, count = 64 * 1024, 320  # 20 MiB
    pinned: list[int] = []

    def churn() -> None:
        blocks = [libc.malloc(size) for _ in range(count)]
        for block in blocks:
            ctypes.memset(block, 1, size)  # resident
        pinned.append(blocks.pop())  # the newest: nearest the heap's top
        for block in blocks:
            libc.free(block)

    thread = threading.Thread(target=churn)
    thread.start()
    thread.join()
    try:
        before = proc_status_bytes()["RssAnon"]
        assert release_free_memory() is True
        after = proc_status_bytes()["RssAnon"]
    finally:
        libc.free(pinned[0])
    assert before - after >= size * count // 2, (before, after)
