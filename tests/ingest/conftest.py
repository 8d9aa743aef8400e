"""Fixtures for the camera ingest tests: simulated cameras on free ports."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from ingest_harness import SPEC

from clients.sim import HttpCamera, RtspCamera, render_clip


@pytest.fixture(scope="session")
def clip() -> Path:
    """The scene as an H.264 MP4 (cached by the simulator between runs)."""
    return render_clip(SPEC)


@pytest.fixture
def media_dir(tmp_path: Path, clip: Path) -> Path:
    """A media directory holding a copy of the clip as ``clip.mp4``."""
    media = tmp_path / "media"
    media.mkdir()
    shutil.copy(clip, media / "clip.mp4")
    return media


@pytest.fixture
def rtsp_camera(clip: Path) -> Iterator[RtspCamera]:
    """A running RTSP camera serving the clip at ``/cam1``."""
    with RtspCamera(clip, path="cam1") as cam:
        yield cam


@pytest.fixture
def http_camera() -> Iterator[HttpCamera]:
    """A running HTTP camera (MJPEG stream and snapshot URL) showing the scene."""
    with HttpCamera(SPEC) as cam:
        yield cam
