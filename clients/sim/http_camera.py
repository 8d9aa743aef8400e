"""An HTTP camera: MJPEG stream and JPEG snapshot URLs, with outages and faults on demand.

Frames are rendered once into cached JPEG loops (:func:`clients.sim.encode.render_jpegs`)
and served by :mod:`clients.sim.http_app` (uvicorn + Starlette) in a child process, so
the camera costs the process under test no threads, descriptors or GIL time.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from clients.sim.encode import SimulatorError, render_jpegs
from clients.sim.http_app import FAULTS, Fault
from clients.sim.process import ChildServer, ChildServerFront, connect_host, free_port, port_open
from clients.sim.scene import SceneSpec

__all__ = ["HttpCamera"]

Source = SceneSpec | Path


class HttpCamera(ChildServerFront):
    """Serves a procedural scene or a video file as an HTTP MJPEG/snapshot camera.

    ``source`` is one scene or video file (served as camera ``name``) or a mapping of
    camera name to source. URLs: ``http://host:port/NAME/mjpeg`` and
    ``.../NAME/snapshot.jpg``; the first camera also answers at ``/mjpeg`` and
    ``/snapshot.jpg``.

    Frames are rendered (or taken from the cache) in the constructor; nothing is served
    until :meth:`start` (or ``with``). :meth:`stop` is an outage, :meth:`start` the
    comeback on the same port. :meth:`set_fault` and :meth:`outage` act on the running
    server through its ``/control`` endpoint.
    """

    def __init__(
        self,
        source: Source | Mapping[str, Source],
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        name: str = "cam1",
        seconds: float | None = None,
        boundary: str = "frame",
        cache: Path | None = None,
        ready_timeout: float = 20.0,
    ) -> None:
        sources = dict(source) if isinstance(source, Mapping) else {name: source}
        if not sources:
            raise ValueError("HttpCamera needs at least one source")
        for cam in sources:
            if not cam or "/" in cam:
                raise ValueError(f"camera names are single path segments, got {cam!r}")
        if not boundary or any(c in boundary for c in '\r\n";'):
            raise ValueError(f"invalid multipart boundary {boundary!r}")
        self.names = list(sources)
        self.host = host
        self.port = port if port is not None else free_port()
        self.boundary = boundary
        self.loops = {cam: render_jpegs(src, seconds, cache=cache) for cam, src in sources.items()}
        argv = [sys.executable, "-m", "clients.sim.http_app", "--host", host]
        argv += ["--port", str(self.port), "--boundary", boundary, "--exit-on-stdin-eof"]
        for cam, loop in self.loops.items():
            argv += ["--camera", f"{cam}={loop}"]
        self._server = ChildServer(
            argv,
            host=host,
            port=self.port,
            name=f"HTTP camera on port {self.port}",
            ready_timeout=ready_timeout,
        )

    @property
    def base_url(self) -> str:
        """``http://host:port``."""
        host = connect_host(self.host)
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    def mjpeg_url_for(self, name: str) -> str:
        """The MJPEG stream URL of camera ``name``."""
        self._check(name)
        return f"{self.base_url}/{name}/mjpeg"

    def snapshot_url_for(self, name: str) -> str:
        """The snapshot URL of camera ``name``."""
        self._check(name)
        return f"{self.base_url}/{name}/snapshot.jpg"

    @property
    def mjpeg_url(self) -> str:
        """The MJPEG stream URL of the first camera."""
        return self.mjpeg_url_for(self.names[0])

    @property
    def snapshot_url(self) -> str:
        """The snapshot URL of the first camera."""
        return self.snapshot_url_for(self.names[0])

    @property
    def control_url(self) -> str:
        """The server-wide control endpoint (faults for all cameras, outages)."""
        return f"{self.base_url}/control"

    def set_fault(self, fault: Fault, camera: str | None = None) -> None:
        """Set the fault of ``camera`` (default: every camera); ``"none"`` clears it.

        ``garbage``: random bytes instead of multipart parts / snapshot images.
        ``truncated``: JPEGs cut short. ``stall``: connections stay open, nothing is sent.
        """
        if fault not in FAULTS:
            raise ValueError(f"fault must be one of {', '.join(FAULTS)}")
        if camera is not None:
            self._check(camera)
        url = self.control_url if camera is None else f"{self.base_url}/{camera}/control"
        self._post(url, {"fault": fault})

    def outage(self, seconds: float, *, wait: bool = True) -> None:
        """Take the server down for ``seconds`` (port closed, streams cut), then back up.

        With ``wait``, returns once the port is closed (the outage has begun).
        """
        self._post(self.control_url, {"outage_seconds": seconds})
        deadline = time.monotonic() + 5.0
        while wait and port_open(self.host, self.port, timeout=0.2):
            if time.monotonic() > deadline:
                raise SimulatorError(f"HTTP camera on port {self.port} did not go down")
            time.sleep(0.02)

    def _post(self, url: str, body: dict[str, Any]) -> None:
        if not self.running:
            raise SimulatorError(f"HTTP camera on port {self.port} is not running")
        response = httpx.post(url, json=body, timeout=5.0)
        if response.status_code != 200:
            raise SimulatorError(f"{url} refused {body}: {response.text}")

    def _check(self, name: str) -> None:
        if name not in self.loops:
            raise KeyError(f"no camera {name!r}; cameras: {', '.join(self.names)}")

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"HttpCamera({self.base_url}, cameras={self.names}, {state})"
