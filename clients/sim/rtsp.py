"""An RTSP camera: H.264 files served by GStreamer's RTSP server in a child process.

The server (``gst_rtsp_server.py``) runs under the system Python, which has PyGObject
and GstRtspServer. It loops each file forever without re-encoding, so serving costs
almost nothing, even for several 1080p streams.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote

from clients.sim.encode import SimulatorError
from clients.sim.process import ChildServer, ChildServerFront, connect_host, free_port

__all__ = ["SYSTEM_PYTHON", "RtspCamera"]

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER_SCRIPT = Path(__file__).with_name("gst_rtsp_server.py")
PASSWORD_ENV = "MOTIONHUB_SIM_RTSP_PASSWORD"  # noqa: S105 (a variable name, no secret)


class RtspCamera(ChildServerFront):
    """Serves H.264 files at ``rtsp://host:port/<path>``, looped forever.

    ``clips`` is one file (served at ``path``) or a mapping of mount path to file, so
    one server can act as several cameras. Nothing runs until :meth:`start` (or
    ``with``). :meth:`stop` is an outage: the port closes and open sessions break;
    :meth:`start` brings the camera back on the same port.

    >>> with RtspCamera(clip, path="cam1") as cam:  # doctest: +SKIP
    ...     av.open(cam.url, options={"rtsp_transport": "tcp"})
    """

    def __init__(
        self,
        clips: Path | Mapping[str, Path],
        *,
        port: int | None = None,
        path: str = "stream",
        host: str = "127.0.0.1",
        user: str | None = None,
        password: str | None = None,
        shared: bool = False,
        ready_timeout: float = 20.0,
        python: str = SYSTEM_PYTHON,
    ) -> None:
        mounts = {path: clips} if isinstance(clips, Path) else dict(clips)
        if not mounts:
            raise ValueError("RtspCamera needs at least one clip")
        for file in mounts.values():
            if not Path(file).is_file():
                raise SimulatorError(f"clip not found: {file}")
        if (user is None) != (password is None):
            raise ValueError("user and password go together")
        self.mounts = {p.strip("/"): Path(f) for p, f in mounts.items()}
        self.host = host
        self.port = port if port is not None else free_port()
        self.user = user
        self._password = password
        argv = [python, str(SERVER_SCRIPT), "--host", host, "--port", str(self.port)]
        argv += ["--exit-on-stdin-eof"]
        for mount, file in self.mounts.items():
            argv += ["--mount", f"{mount}={file}"]
        if shared:
            argv.append("--shared")
        env = None
        if user is not None and password is not None:
            argv += ["--user", user]
            env = {PASSWORD_ENV: password}
        self._server = ChildServer(
            argv,
            host=host,
            port=self.port,
            name=f"RTSP server on port {self.port}",
            env=env,
            ready_timeout=ready_timeout,
        )

    def url_for(self, path: str, *, credentials: bool = False) -> str:
        """The URL of mount ``path``; with ``credentials``, including user and password."""
        if path.strip("/") not in self.mounts:
            raise KeyError(f"no mount {path!r}; mounts: {', '.join(self.mounts)}")
        auth = ""
        if credentials and self.user is not None and self._password is not None:
            auth = f"{quote(self.user, safe='')}:{quote(self._password, safe='')}@"
        host = connect_host(self.host)
        host = f"[{host}]" if ":" in host else host
        return f"rtsp://{auth}{host}:{self.port}/{path.strip('/')}"

    @property
    def urls(self) -> dict[str, str]:
        """Mount path to URL (without credentials)."""
        return {p: self.url_for(p) for p in self.mounts}

    @property
    def url(self) -> str:
        """The URL of the first mount (without credentials)."""
        return self.url_for(next(iter(self.mounts)))

    @property
    def url_with_credentials(self) -> str:
        """The URL of the first mount with ``user:password@`` (same as ``url`` without auth)."""
        return self.url_for(next(iter(self.mounts)), credentials=True)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"RtspCamera({', '.join(self.urls.values())}, {state})"
