"""Fixtures for the camera simulator's own tests (helpers are in sim_harness.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sim_harness import MOVING, children

from clients.sim import render_clip


@pytest.fixture(scope="session")
def moving_clip() -> Path:
    """An H.264 clip of a scene with objects always in motion (cached between runs)."""
    return render_clip(MOVING)


@pytest.fixture
def no_leftover_children() -> Iterator[None]:
    """Fail if the test leaves child processes of this process alive (or as zombies)."""
    before = children()
    yield
    deadline = time.monotonic() + 5
    while (extra := children() - before) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not extra, f"child processes left behind: {extra}"
