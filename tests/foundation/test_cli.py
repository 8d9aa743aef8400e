"""The command line, run as a user runs it: a real subprocess, real exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from server.cli import main


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from server.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("server: {port: 8000, bogus: 1}\n", "server.bogus: unknown key"),
        ("server: {port: [1, 2]}\n", "server.port: Input should be a valid integer"),
        ("cameras:\n  - id: cam1\n", "cameras[0].url: Field required"),
        ("server: {port: 8000\n", "invalid YAML"),
        (
            "cameras:\n  - id: cam1\n    url: rtsp://u:${CAM1_PASSWORD_NOT_SET}@10.0.0.1/s\n",
            "cameras[0].url: environment variable CAM1_PASSWORD_NOT_SET is not set",
        ),
        ("server: {port: yes}\n", "server.port: expected a number, not a boolean"),
        (
            "cameras:\n  - id: cam1\n    url: rtsp://10.0.0.1/s\n    detect: {threshold: on}\n",
            "cameras[0].detect.threshold: expected a number, not a boolean",
        ),
    ],
    ids=[
        "unknown-key",
        "wrong-type",
        "missing-url",
        "bad-yaml",
        "unset-variable",
        "bool-port",
        "bool-threshold",
    ],
)
def test_bad_config_one_line_and_exit_2(tmp_path: Path, content: str, expected: str) -> None:
    cfg = tmp_path / "bad.yml"
    cfg.write_text(content)
    for command in ("check", "serve"):
        result = run_cli(command, "--config", str(cfg))
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith(f"motionhub: config error: {cfg}")
        assert expected in lines[0]
        assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", ["check", "serve", "demo", "bench"])
def test_bad_decode_slots_variable_one_line_and_exit_2(tmp_path: Path, command: str) -> None:
    cfg = tmp_path / "ok.yml"
    cfg.write_text("cameras:\n  - id: cam1\n    url: rtsp://u:p@10.0.0.1/s\n")
    args = {
        "demo": ["demo"],
        "bench": ["bench", "detector", "--out", str(tmp_path / "bench")],
    }.get(command, [command, "--config", str(cfg)])
    result = run_cli(*args, env={**os.environ, "MOTIONHUB_DECODE_SLOTS": "two"})
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "motionhub: config error: MOTIONHUB_DECODE_SLOTS must be a whole number or 'auto',"
        " not 'two'"
    ]


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    result = run_cli("check", "--config", str(tmp_path / "nope.yml"))
    assert result.returncode == 2
    assert "cannot read config file" in result.stderr


def test_check_accepts_good_file(tmp_path: Path) -> None:
    cfg = tmp_path / "ok.yml"
    cfg.write_text("cameras:\n  - id: cam1\n    url: rtsp://u:p@10.0.0.1/s\n")
    result = run_cli("check", "--config", str(cfg))
    assert result.returncode == 0, result.stderr
    assert "1 camera(s)" in result.stdout


def test_every_command_has_help() -> None:
    names = sorted(main.commands)
    assert {"serve", "demo", "check"} <= set(names)
    for name in names:
        result = run_cli(name, "--help")
        assert result.returncode == 0, (name, result.stderr)
        assert "Usage:" in result.stdout


@pytest.mark.parametrize("command", ["check", "serve"])
def test_override_that_is_not_json_is_one_line_and_exit_2(tmp_path: Path, command: str) -> None:
    cfg = tmp_path / "ok.yml"
    cfg.write_text("cameras:\n  - id: cam1\n    url: rtsp://u:p@10.0.0.1/s\n")
    env = {**os.environ, "MOTIONHUB_SERVER__AUTH__TOKENS": "[bad json s3cretvalue"}
    result = run_cli(command, "--config", str(cfg), env=env)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "motionhub: config error: MOTIONHUB_SERVER__AUTH__TOKENS: not valid JSON"
        " (lists and sections are written in JSON)"
    ]


@pytest.mark.parametrize("command", ["check", "serve"])
@pytest.mark.parametrize("where", ["file", "under-a-file"])
def test_storage_path_that_cannot_be_a_directory_is_one_line(
    tmp_path: Path, command: str, where: str
) -> None:
    afile = tmp_path / "afile"
    afile.write_text("")
    path = afile if where == "file" else afile / "data"
    cfg = tmp_path / "ok.yml"
    cfg.write_text(f"storage: {{path: '{path}'}}\ncameras: []\n")
    result = run_cli(command, "--config", str(cfg))
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"motionhub: config error: {cfg}: storage.path: ")
    assert "not a directory" in line


def test_serve_reports_a_storage_path_it_cannot_create_in_one_line(tmp_path: Path) -> None:
    path = Path("/proc/motionhub-data")  # /proc takes no new directories, even from root
    if not Path("/proc/self").is_dir():
        pytest.skip("needs Linux /proc")
    cfg = tmp_path / "ok.yml"
    cfg.write_text(f"storage: {{path: '{path}'}}\ncameras: []\n")
    result = run_cli("serve", "--config", str(cfg))
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"motionhub: config error: {cfg}: storage.path: cannot create {path}: ")


def test_serve_reports_a_database_it_cannot_open_in_one_line_and_exits(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    (data / "motionhub.db").write_bytes(b"not a database, just text " * 8)
    cfg = tmp_path / "ok.yml"
    cfg.write_text(f"server: {{port: 0}}\nstorage: {{path: '{data}'}}\ncameras: []\n")
    result = run_cli("serve", "--config", str(cfg))
    assert result.returncode == 3, result.stderr
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, result.stderr
    assert f"cannot open storage at {data}: file is not a database" in errors[0]
    assert "Traceback" not in result.stderr
    # Nothing was written over it.
    assert (data / "motionhub.db").read_bytes() == b"not a database, just text " * 8
