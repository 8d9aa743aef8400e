"""CPU slots: at most one camera per core between a decode and its hand-over."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from ingest_harness import camera, running, security, take_frames

from server.cameras import pump
from server.cameras.slots import CpuSlots, slot_count
from server.cameras.sources import video


def test_a_thread_holds_at_most_one_slot() -> None:
    slots = CpuSlots(1)
    slots.hold()
    slots.hold()  # the same thread again: still one slot, so no deadlock
    slots.release()
    slots.release()  # holds none now: nothing to give back
    taken = threading.Event()

    def other() -> None:
        slots.hold()
        taken.set()
        slots.release()

    thread = threading.Thread(target=other)
    thread.start()
    assert taken.wait(5), "the one slot was not free again"
    thread.join()


def test_a_second_thread_waits_for_the_only_slot() -> None:
    slots = CpuSlots(1)
    slots.hold()
    taken = threading.Event()

    def other() -> None:
        slots.hold()
        taken.set()
        slots.release()

    thread = threading.Thread(target=other)
    thread.start()
    assert not taken.wait(0.2), "a second thread got the slot another holds"
    slots.release()
    assert taken.wait(5)
    thread.join()


def test_zero_slots_means_no_limit() -> None:
    slots = CpuSlots(0)
    done = threading.Event()

    def other() -> None:
        slots.hold()
        done.set()

    slots.hold()
    thread = threading.Thread(target=other)
    thread.start()
    assert done.wait(5)
    thread.join()


def test_slot_count_defaults_to_the_usable_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MOTIONHUB_DECODE_SLOTS", raising=False)
    assert slot_count() == len(os.sched_getaffinity(0))
    monkeypatch.setenv("MOTIONHUB_DECODE_SLOTS", "3")
    assert slot_count() == 3
    monkeypatch.setenv("MOTIONHUB_DECODE_SLOTS", "0")
    assert slot_count() == 0


def _clip(path: Path) -> Path:
    subprocess.run(
        [
            "ffmpeg", "-v", "error", "-y", "-f", "lavfi",
            "-i", "testsrc2=size=320x240:rate=30:duration=1",
            "-c:v", "libx264", "-preset", "ultrafast", "-g", "15", "-pix_fmt", "yuv420p", str(path),
        ],
        check=True,
    )  # fmt: skip
    return path


async def test_cameras_take_turns_from_decode_to_hand_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One slot for three cameras: the real gate, only smaller than this machine's default.
    slots = CpuSlots(1)
    monkeypatch.setattr(pump, "DECODE_SLOTS", slots)
    monkeypatch.setattr(video, "DECODE_SLOTS", slots)
    media = tmp_path / "media"
    media.mkdir()
    clip = _clip(media / "clip.mp4")
    lock = threading.Lock()
    inside = [0]
    most = [0]
    analysed: dict[str, int] = {}

    def analyser(name: str) -> Callable[[np.ndarray, float], int]:
        def analyse(luma: np.ndarray, mono: float) -> int:
            with lock:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
                analysed[name] = analysed.get(name, 0) + 1
            time.sleep(0.004)  # long enough that readers without the gate would overlap
            with lock:
                inside[0] -= 1
            return 0

        return analyse

    async with contextlib.AsyncExitStack() as stack:
        readers = []
        for name in ("a", "b", "c"):
            settings = camera(str(clip), detect={"fps": 30})
            reader = await stack.enter_async_context(running(settings, security(media)))
            reader.set_analyser(analyser(name))
            readers.append(reader)
        for reader in readers:
            await take_frames(reader, 20, within=10)
        await asyncio.sleep(0.5)
    assert sorted(analysed) == ["a", "b", "c"]
    assert min(analysed.values()) >= 20
    assert most[0] == 1, f"{most[0]} cameras were between decode and hand-over at once"
    # Every reader gave its slot back when it stopped.
    assert slots._gate is not None
    assert slots._gate.acquire(blocking=False)
