"""Each bench suite runs end to end in ``--quick`` mode and writes well-formed results.

Only the shape of the output is checked: timings belong in the bench, never in tests.
"""

from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from clients.sim.rtsp import SYSTEM_PYTHON
from server.bench import SUITES
from server.bench.cli import bench_command
from server.bench.harness import FFMPEG, MOSQUITTO

pytestmark = pytest.mark.slow

# Every suite serves its cameras with RtspCamera, which runs under the system Python.
_NEEDS = {
    "decode": [FFMPEG, SYSTEM_PYTHON],
    "latency": [MOSQUITTO, SYSTEM_PYTHON],
    "fanout": [SYSTEM_PYTHON],
    "memory": [SYSTEM_PYTHON],
    "scale": [SYSTEM_PYTHON],
}


def _missing(suite: str) -> list[str]:
    return [tool for tool in _NEEDS.get(suite, []) if shutil.which(tool) is None]


def _run(suite: str, out: Path) -> dict[str, Any]:
    result = CliRunner().invoke(
        bench_command, [suite, "--quick", "--json", "--out", str(out)], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    written: dict[str, Any] = json.loads((out / f"{suite}.json").read_text())
    assert printed[suite] == written
    summary = (out / "summary.md").read_text()
    assert f"motionhub bench {suite} --quick" in summary
    assert (out / f"{suite}.md").read_text().startswith(f"## {suite}")
    return written


def _distribution(d: dict[str, Any]) -> None:
    assert d["count"] >= 0
    if d["count"]:
        assert d["p50"] <= d["p90"] <= d["p99"] <= d["max"]


def test_every_suite_is_registered() -> None:
    assert set(SUITES) >= {"detector", "decode", "latency", "fanout", "memory", "scale"}


def test_decode_quick(tmp_path: Path) -> None:
    if _missing("decode"):
        pytest.skip(f"needs {_missing('decode')}")
    data = _run("decode", tmp_path)
    assert data["quick"] is True
    assert data["machine"]["cores"] >= 1
    for case in data["cases"].values():
        assert case["ffmpeg_fps"] > 0
        assert case["pipeline_decoded_fps"] > 0
        assert case["pipeline_analysed_fps"] > 0
        assert case["ratio"] == pytest.approx(
            case["pipeline_decoded_fps"] / case["ffmpeg_fps"], rel=0.05
        )
        assert isinstance(case["meets"], bool)


def test_latency_quick(tmp_path: Path) -> None:
    if _missing("latency"):
        pytest.skip(f"needs {_missing('latency')}")
    data = _run("latency", tmp_path)
    keys = (
        "ws_probe_motion_ms",
        "ws_probe_event_start_ms",
        "ws_load_clients_motion_ms",
        "ws_load_clients_event_start_ms",
        "mqtt_event_start_ms",
        "server_loop_lag_ms",
    )
    for key in keys:
        _distribution(data[key])
    # The probes, in their own process, are the WebSocket figure; the load clients are kept.
    assert data["ws_probe_motion_ms"]["count"] > 0
    assert data["ws_load_clients_motion_ms"]["count"] > 0
    probes = data["ws_probes"]
    assert 2 <= len(probes) == data["load"]["ws_probes"]
    # Spread through the server's connection order: one after each batch of load clients.
    positions = [p["position"] for p in probes]
    assert positions == sorted(set(positions))
    assert positions[-1] == data["load"]["ws_clients"] + len(probes)
    assert positions[0] < positions[-1] // 2
    assert sum(p["motion_ms"]["count"] for p in probes) == data["ws_probe_motion_ms"]["count"]
    for p in probes:
        _distribution(p["motion_ms"])
        _distribution(p["event_start_ms"])
    assert set(data["meets"]) == {"ws", "mqtt"}


def test_fanout_quick(tmp_path: Path) -> None:
    if _missing("fanout"):
        pytest.skip(f"needs {_missing('fanout')}")
    data = _run("fanout", tmp_path)
    names = [p["phase"] for p in data["phases"]]
    assert names == ["no clients", "all reading", "10% stalled"]
    for phase in data["phases"]:
        _distribution(phase["event_start_ms"])
        assert phase["analysed_fps"] > 0
    assert data["phases"][2]["clients_stalled"] == data["load"]["clients"] // 10
    assert len(data["pipeline_fps_ratio"]) == 2


def test_memory_quick(tmp_path: Path) -> None:
    if _missing("memory"):
        pytest.skip(f"needs {_missing('memory')}")
    data = _run("memory", tmp_path)
    pc, soak = data["per_camera"], data["soak"]
    assert pc["rss_none_mb"] > 0
    assert pc["rss_all_mb"] >= pc["rss_none_mb"]
    assert list(pc["by_count"]) == ["0", "1", "2"]
    for m in pc["by_count"].values():
        # RSS is its anonymous and file-backed parts; USS and PSS are at most RSS.
        assert m["anon"] + m["file"] == pytest.approx(m["rss"], abs=0.2)
        assert 0 < m["uss"] <= m["pss"] <= m["rss"]
    assert set(pc["marginal_camera_mb"]) == {"rss", "anon", "file", "pss", "uss"}
    assert soak["drops"] >= 2
    assert soak["samples_mb"]


def test_scale_quick(tmp_path: Path) -> None:
    if _missing("scale"):
        pytest.skip(f"needs {_missing('scale')}")
    data = _run("scale", tmp_path)
    assert {len(p["cpus"]) for p in data["phases"]} == {1, 2} or data["machine"]["cores"] < 2
    assert data["fps_1_core"] > 0
    assert data["fps_2_cores"] > 0
    # The whole workload (server and simulator) pinned, and the server alone, both reported.
    assert {p["mode"] for p in data["phases"]} == {"workload", "server only"}
    for phase in data["phases"]:
        assert phase["simulator_cpu_s_per_s"] > 0
        assert phase["frames_per_workload_cpu_s"] < phase["frames_per_server_cpu_s"]
    assert data["server_only"]["fps_1_core"] > 0
    assert data["frames_per_workload_cpu_s_ratio"] > 0
    # A discarded warm-up before the rounds; the figure is the median of the rounds' ratios.
    assert data["warmup"]
    assert len(data["round_ratios"]) == data["load"]["rounds"]
    assert data["ratio"] == pytest.approx(statistics.median(data["round_ratios"]), abs=0.001)
    assert data["ratio_min"] <= data["ratio"] <= data["ratio_max"]
    assert "available" in data["profile"]
