"""CPU slots: at most one camera per core between a decode and its hand-over."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from ingest_harness import camera, running, security, take_frames

from server.cameras import pump
from server.cameras import slots as slots_module
from server.cameras.slots import CpuSlots, fixed_slots
from server.cameras.sources import video


def _take_in_another_thread(slots: CpuSlots) -> tuple[threading.Event, threading.Thread]:
    """Start a thread that takes a slot, sets the event, and gives the slot back."""
    taken = threading.Event()

    def other() -> None:
        slots.hold()
        taken.set()
        slots.release()

    thread = threading.Thread(target=other)
    thread.start()
    return taken, thread


def test_a_thread_holds_at_most_one_slot() -> None:
    slots = CpuSlots(1)
    slots.hold()
    slots.hold()  # the same thread again: still one slot, so no deadlock
    slots.release()
    slots.release()  # holds none now: nothing to give back
    taken, thread = _take_in_another_thread(slots)
    assert taken.wait(5), "the one slot was not free again"
    thread.join()


def test_a_second_thread_waits_for_the_only_slot() -> None:
    slots = CpuSlots(1)
    slots.hold()
    taken, thread = _take_in_another_thread(slots)
    assert not taken.wait(0.2), "a second thread got the slot another holds"
    slots.release()
    assert taken.wait(5)
    thread.join()


def test_zero_slots_means_no_limit() -> None:
    slots = CpuSlots(0)
    slots.hold()
    taken, thread = _take_in_another_thread(slots)
    assert taken.wait(5)
    thread.join()


def test_the_count_can_be_fixed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MOTIONHUB_DECODE_SLOTS", raising=False)
    assert fixed_slots() == 0
    monkeypatch.setenv("MOTIONHUB_DECODE_SLOTS", "auto")
    assert fixed_slots() is None
    monkeypatch.setenv("MOTIONHUB_DECODE_SLOTS", "two")
    with pytest.raises(ValueError, match="whole number or 'auto', not 'two'"):
        fixed_slots()
    monkeypatch.setenv("MOTIONHUB_DECODE_SLOTS", "3")
    assert fixed_slots() == 3
    assert CpuSlots(fixed_slots()).count == 0  # slots are issued at the first hold
    monkeypatch.setenv("MOTIONHUB_DECODE_SLOTS", "0")
    assert fixed_slots() == 0


def test_the_default_count_follows_the_cpus_the_process_may_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("needs two CPUs to change the count")
    monkeypatch.setattr(slots_module, "RECHECK_SECONDS", 0.0)
    slots = CpuSlots()
    counts: list[int] = []
    failed: list[BaseException] = []

    def pinned() -> None:
        # Affinity is per thread on Linux: pin only this one, as taskset would the process.
        try:
            for allowed in ({cpus[0]}, set(cpus), {cpus[1]}):
                os.sched_setaffinity(0, allowed)
                slots.hold()
                counts.append(slots.count)
                slots.release()
        except BaseException as exc:
            failed.append(exc)

    thread = threading.Thread(target=pinned)
    thread.start()
    thread.join(10)
    assert not failed
    assert counts == [1, len(cpus), 1]


def test_shrinking_takes_a_held_slot_out_when_it_comes_back() -> None:
    slots = CpuSlots(2)
    slots.hold()
    slots._fixed = 1  # as a narrower affinity would
    slots._checked = -1e9
    slots._resize()
    assert slots.count == 1
    taken, thread = _take_in_another_thread(slots)
    assert not taken.wait(0.2), "the free slot was not taken out"
    slots.release()
    assert taken.wait(5)
    thread.join()
    assert slots.count == 1


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
    assert slots.count == 1
    assert slots._tokens.qsize() == 1, "a stopped reader kept its slot"


def _cpu_cgroup_mount() -> Path | None:
    """Where this machine's CPU controller can be given a new cgroup, if anywhere."""
    v1 = [Path("/sys/fs/cgroup/cpu"), Path("/sys/fs/cgroup/cpu,cpuacct")]
    for mount in v1:
        if (mount / "cpu.cfs_quota_us").exists() and os.access(mount, os.W_OK):
            return mount
    v2 = Path("/sys/fs/cgroup")
    enabled = v2 / "cgroup.subtree_control"  # a new child gets cpu.max only if it is
    if enabled.exists() and "cpu" in enabled.read_text().split():
        return v2 if os.access(v2, os.W_OK) else None
    return None


@pytest.mark.parametrize(("quota", "expected"), [(0.5, 1), (1.5, 2)])
def test_auto_counts_the_cgroup_cpu_quota(quota: float, expected: int) -> None:
    # A real cgroup with a CPU quota, as Docker's --cpus sets; a process moved into it must
    # count the quota, rounded up, as its usable CPUs when its affinity allows more.
    mount = _cpu_cgroup_mount()
    if mount is None:
        pytest.skip("no writable cgroup CPU controller (needs root outside a container)")
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two CPUs for a quota to count fewer")
    if slots_module.cpu_quota() is not None:
        pytest.skip("this process already runs under a CPU quota, which would cap the new one")
    group = mount / f"motionhub-test-{os.getpid()}-{quota}"
    group.mkdir()
    try:
        period = 100_000
        if (group / "cpu.max").exists():
            (group / "cpu.max").write_text(f"{int(quota * period)} {period}")
        else:
            assert (group / "cpu.cfs_quota_us").exists(), "a new cgroup without quota files"
            (group / "cpu.cfs_period_us").write_text(str(period))
            (group / "cpu.cfs_quota_us").write_text(str(int(quota * period)))
        code = (
            "import sys; sys.stdin.readline()\n"
            "from server.cameras.slots import cpu_quota, usable_cpus\n"
            "print(cpu_quota(), usable_cpus())\n"
        )
        child = subprocess.Popen(
            [sys.executable, "-c", code],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[2],
        )
        try:
            (group / "cgroup.procs").write_text(str(child.pid))
            out, _ = child.communicate("go\n", timeout=30)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        assert child.returncode == 0
        seen_quota, seen_cpus = out.split()
        assert float(seen_quota) == pytest.approx(quota)
        assert int(seen_cpus) == expected
    finally:
        group.rmdir()


def _cgroup_tree(root: Path, files: dict[str, str], membership: str) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    listing = root / "self-cgroup"
    listing.write_text(membership)
    return listing


@pytest.mark.parametrize(
    ("files", "membership", "expected"),
    [
        # cgroup v2: the tightest of the process's cgroup and its parents.
        (
            {
                "cpu.max": "max 100000\n",
                "a/cpu.max": "300000 100000\n",
                "a/b/cpu.max": "max 100000\n",
            },
            "0::/a/b\n",
            3.0,
        ),
        ({"a/cpu.max": "max 100000\n"}, "0::/a\n", None),
        # cgroup v2 beside v1 controllers (hybrid): the "unified" mount.
        ({"unified/x/cpu.max": "50000 100000\n"}, "1:memory:/y\n0::/x\n", 0.5),
        # cgroup v1, the cpu controller mounted with cpuacct; -1 is no quota.
        (
            {
                "cpu,cpuacct/k/cpu.cfs_quota_us": "150000\n",
                "cpu,cpuacct/k/cpu.cfs_period_us": "100000\n",
                "cpu,cpuacct/cpu.cfs_quota_us": "-1\n",
                "cpu,cpuacct/cpu.cfs_period_us": "100000\n",
            },
            "4:cpu,cpuacct:/k\n3:cpuset:/k\n",
            1.5,
        ),
        # A cgroup outside the namespace, garbage and a colon in the path are not quotas.
        ({"cpu.max": "100000 100000\n"}, "0::/../../elsewhere\n", None),
        ({"c:d/cpu.max": "garbage\n"}, "0::/c:d\nnot a cgroup line\n", None),
        ({"c:d/cpu.max": "200000 100000\n"}, "0::/c:d\n", 2.0),
    ],
    ids=["v2-parent", "v2-none", "hybrid", "v1", "outside", "garbage", "colon"],
)
def test_cpu_quota_reads_the_cgroup_files(
    tmp_path: Path, files: dict[str, str], membership: str, expected: float | None
) -> None:
    listing = _cgroup_tree(tmp_path, files, membership)
    assert slots_module.cpu_quota(tmp_path, listing) == expected


def test_a_missing_cgroup_listing_is_no_quota(tmp_path: Path) -> None:
    assert slots_module.cpu_quota(tmp_path, tmp_path / "absent") is None
