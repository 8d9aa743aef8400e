"""Where the bench finds py-spy: a virtual environment's copy beside the interpreter counts
even when the environment is not activated (its bin folder not on PATH)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from server.bench import profile


def _tool(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    tool = folder / "py-spy"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    return tool


def test_py_spy_beside_the_interpreter_is_found_off_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    beside = _tool(tmp_path / "venv" / "bin")
    monkeypatch.setattr(sys, "executable", str(beside.parent / "python"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert profile.py_spy_available()
    assert profile._py_spy() == str(beside)


def test_the_copy_beside_the_interpreter_comes_before_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    beside = _tool(tmp_path / "venv" / "bin")
    on_path = _tool(tmp_path / "path")
    monkeypatch.setattr(sys, "executable", str(beside.parent / "python"))
    monkeypatch.setenv("PATH", str(on_path.parent))
    assert profile._py_spy() == str(beside)


def test_without_a_copy_beside_the_interpreter_path_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_path = _tool(tmp_path / "path")
    monkeypatch.setattr(sys, "executable", str(tmp_path / "venv" / "bin" / "python"))
    monkeypatch.setenv("PATH", str(on_path.parent))
    assert profile._py_spy() == str(on_path)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert not profile.py_spy_available()
