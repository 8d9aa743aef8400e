"""A small filesystem of the test's own (a tmpfs, as root), to make a disk full or read-only
for real.

Only root can mount. Callers check :attr:`SmallDisk.real` and fall back to what works for
anyone (permissions for read-only), or skip, saying why.
"""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest

__all__ = ["SmallDisk", "fill_up", "small_disk"]


class SmallDisk:
    """A tmpfs of ``size`` mounted on ``path`` (created), when the process may mount."""

    def __init__(self, path: Path, size: str = "1m") -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self.real = False
        """Whether the tmpfs is mounted (faults are then caused for real)."""
        if os.geteuid() == 0:
            run = subprocess.run(
                ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
                capture_output=True,
                text=True,
                check=False,
            )
            self.real = run.returncode == 0
        self.filler = path / "filler"

    def remount(self, mode: str) -> None:
        """``"ro"`` or ``"rw"``; only on a real mount."""
        assert self.real, "not mounted"
        subprocess.run(["mount", "-o", f"remount,{mode}", str(self.path)], check=True)

    def fill(self) -> None:
        """Take every free byte (ENOSPC from then on); only on a real mount."""
        assert self.real, "not mounted"
        fill_up(self.filler)

    def free(self) -> None:
        """Give back what :meth:`fill` took."""
        self.filler.unlink()

    def close(self) -> None:
        if self.real:
            subprocess.run(["umount", "-l", str(self.path)], check=False)
            self.real = False

    def __enter__(self) -> SmallDisk:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def small_disk(path: Path, size: str = "1m") -> SmallDisk:
    """A mounted :class:`SmallDisk`, or the test is skipped: only root can make one."""
    disk = SmallDisk(path, size)
    if not disk.real:
        pytest.skip("needs root: a full disk is made with a tmpfs of the test's own")
    return disk


def fill_up(path: Path) -> None:
    """Write zeros to ``path`` until the filesystem is full (ENOSPC)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            try:
                os.write(fd, b"\0" * 65536)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                return
    finally:
        os.close(fd)
