"""scripts/bootstrap on a machine whose Python cannot make a complete virtual environment."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# What Debian's python3 does without python3-venv: the environment is created, then
# ensurepip is missing, so it has no pip and venv exits with status 1.
NO_ENSUREPIP_PYTHON = f"""#!/bin/sh
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
  shift 2
  {sys.executable} -m venv --without-pip "$@"
  echo "The virtual environment was not successfully created: ensurepip is not available." >&2
  exit 1
fi
exec {sys.executable} "$@"
"""


def run_bootstrap(checkout: Path, python: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(checkout / "scripts" / "bootstrap")],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "PYTHON": str(python)},
        timeout=120,
        check=False,
    )


def test_missing_venv_support_is_reported_on_every_run(tmp_path: Path) -> None:
    checkout = tmp_path / "motionhub"
    (checkout / "scripts").mkdir(parents=True)
    shutil.copy2(ROOT / "scripts" / "bootstrap", checkout / "scripts" / "bootstrap")
    shutil.copy2(ROOT / "pyproject.toml", checkout / "pyproject.toml")
    python = tmp_path / "python3"
    python.write_text(NO_ENSUREPIP_PYTHON)
    python.chmod(0o755)

    for attempt in (1, 2):
        result = run_bootstrap(checkout, python)
        assert result.returncode == 1, (attempt, result.stderr)
        assert "sudo apt-get install python3-venv" in result.stderr, (attempt, result.stderr)
        assert "No module named pip" not in result.stderr, (attempt, result.stderr)
        assert not (checkout / ".venv").exists(), attempt
