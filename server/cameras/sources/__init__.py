"""Camera sources: one module per way of getting frames from a camera."""

from __future__ import annotations

import threading

from server.cameras.policy import SourceKind, SourcePlan
from server.cameras.sources.base import JpegSample, Sample, Source, VideoSample
from server.cameras.sources.mjpeg import MjpegSource
from server.cameras.sources.snapshot import (
    HttpCameraClient,
    NotACameraUrl,
    SnapshotSource,
    probe_http_kind,
)
from server.cameras.sources.video import VideoSource
from server.config import CameraSettings, SecuritySettings

__all__ = [
    "HttpCameraClient",
    "JpegSample",
    "MjpegSource",
    "NotACameraUrl",
    "Sample",
    "SnapshotSource",
    "Source",
    "VideoSample",
    "VideoSource",
    "make_source",
    "probe_http_kind",
]


def make_source(
    kind: SourceKind,
    plan: SourcePlan,
    settings: CameraSettings,
    security: SecuritySettings,
    stop: threading.Event,
) -> Source:
    """A new, unopened source of ``kind`` for ``plan``."""
    if kind == "mjpeg":
        return MjpegSource(plan, settings, stop)
    if kind == "snapshot":
        return SnapshotSource(plan, settings, stop, security=security)
    return VideoSource(plan, settings, stop, kind=kind)
