"""The camera simulator: procedural or file-based cameras over RTSP, MJPEG and snapshots.

Used by the tests, ``motionhub demo``, the benchmarks and docker-compose (``motionhub
sim``). No third-party footage: scenes are drawn from a seed.

::

    from clients.sim import SceneSpec, render_clip, RtspCamera, HttpCamera, free_port

    spec = SceneSpec(width=640, height=360, fps=15, seed=1)
    clip = render_clip(spec)              # cached H.264 MP4, one loop (spec.loop_seconds)
    with RtspCamera(clip, port=free_port(), path="cam1") as cam:
        cam.url                           # rtsp://127.0.0.1:PORT/cam1
        cam.stop()                        # outage: port closed, sessions cut
        cam.start()                       # back, same port
    with RtspCamera({"a": clip, "b": clip}, user="u", password="p") as cam:
        cam.urls, cam.url_with_credentials
    with HttpCamera(spec) as cam:         # or HttpCamera({"cam1": spec, "cam2": Path("x.mp4")})
        cam.mjpeg_url, cam.snapshot_url
        cam.set_fault("garbage")          # also "truncated", "stall", "none"
        cam.outage(3)                     # down for 3 s, then back by itself

* :class:`SceneSpec` / :class:`Scene`: the procedural scene (any size and fps, activity
  schedule, lighting drift, light switches, sensor noise); ``Scene(spec).frame(i)`` is a
  BGR uint8 array. ``spec.is_active(t)`` says whether objects move at time ``t``.
* :func:`render_clip`, :func:`prepare_video`, :func:`render_jpegs`: render once into
  the cache (:func:`cache_dir`), so serving never encodes.
* :class:`RtspCamera`: GStreamer RTSP server (system Python) looping H.264 files.
* :class:`HttpCamera`: uvicorn server for MJPEG and snapshots, with faults and outages.

Servers run as child processes that exit with their parent. Errors are
:class:`SimulatorError`. See docs/simulator.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clients.sim.encode import (
        SimulatorError,
        cache_dir,
        prepare_video,
        render_clip,
        render_jpegs,
    )
    from clients.sim.http_camera import HttpCamera
    from clients.sim.process import free_port
    from clients.sim.rtsp import RtspCamera
    from clients.sim.scene import Scene, SceneSpec

__all__ = [
    "HttpCamera",
    "RtspCamera",
    "Scene",
    "SceneSpec",
    "SimulatorError",
    "cache_dir",
    "free_port",
    "prepare_video",
    "render_clip",
    "render_jpegs",
]

# Imported on first use: the server child processes import submodules of this package
# and should not pay for PyAV, OpenCV and httpx at start-up.
_HOME = {
    "HttpCamera": "http_camera",
    "RtspCamera": "rtsp",
    "Scene": "scene",
    "SceneSpec": "scene",
    "SimulatorError": "encode",
    "cache_dir": "encode",
    "free_port": "process",
    "prepare_video": "encode",
    "render_clip": "encode",
    "render_jpegs": "encode",
}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
