"""The bench server's records of garbage-collector pauses and of threads waiting for a CPU,
and the latency suite's summary of the pauses."""

from __future__ import annotations

import gc
import sys
import threading

import pytest

from server.bench.latency import gc_pauses
from server.bench.probe import GcMeter, Recorder, thread_runqueue_wait


def test_the_meter_records_each_collection_with_its_generation() -> None:
    meter = GcMeter()
    gc.callbacks.append(meter)
    try:
        gc.collect(0)
        gc.collect(2)
    finally:
        gc.callbacks.remove(meter)
    pauses = meter.take()
    assert [gen for gen, _ in pauses][-2:] == [0, 2]
    assert all(seconds >= 0 for _, seconds in pauses)
    assert meter.take() == []  # taken once


def test_pauses_are_summed_per_generation() -> None:
    summary = gc_pauses([[0, 0.001], [2, 0.030], [0, 0.003]])
    assert summary == {
        "gen0": {"count": 2, "total_ms": 4.0, "max_ms": 3.0},
        "gen2": {"count": 1, "total_ms": 30.0, "max_ms": 30.0},
    }
    assert gc_pauses([]) == {}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/<pid>/task/*/schedstat")
def test_runqueue_wait_is_reported_per_kind_of_thread() -> None:
    stop = threading.Event()
    reader = threading.Thread(target=stop.wait, name="camera-x")
    reader.start()
    try:
        waits = thread_runqueue_wait()
    finally:
        stop.set()
        reader.join()
    assert {"MainThread", "camera readers"} <= set(waits)
    assert all(seconds >= 0 for seconds in waits.values())


def test_a_recorder_keeps_only_the_newest_samples_until_taken() -> None:
    recorder: Recorder[int] = Recorder(keep=3)
    for i in range(5):
        recorder.add(i)
    assert recorder.take() == [2, 3, 4]
    assert recorder.take() == []
    recorder.add(7)
    assert recorder.take() == [7]
