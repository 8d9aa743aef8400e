"""``motionhub demo``: the server on built-in simulated cameras, no setup.

Two or three procedural scenes are served as MJPEG cameras by the simulator (a child
process, so nothing else needs installing), events go to a temporary data directory
(or ``--data DIR``), and the dashboard URL is printed once the server accepts connections.
"""

from __future__ import annotations

import os
import signal
import socket
import tempfile
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import click

from server.config import Settings

if TYPE_CHECKING:
    from clients.sim import HttpCamera, SceneSpec

__all__ = ["demo_settings", "run_demo"]


class _Terminated(BaseException):
    """SIGTERM arrived: unwind (stopping the simulator, removing the temporary data), then
    end by the same signal."""


def _terminated(signum: int, frame: FrameType | None) -> None:
    raise _Terminated


_SCENES = [
    ("front", "Front door", dict(seed=11, objects=2, active_seconds=6.0, still_seconds=6.0)),
    ("yard", "Yard", dict(seed=22, objects=3, active_seconds=4.0, still_seconds=8.0,
                          lighting_drift=0.08)),
    ("drive", "Driveway", dict(seed=33, objects=1, active_seconds=8.0, still_seconds=4.0)),
]  # fmt: skip
_LEFT_HALF = [[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]]


def demo_settings(urls: dict[str, str], port: int, data: Path, host: str = "127.0.0.1") -> Settings:
    """Settings for the demo cameras at ``urls`` (camera id to MJPEG URL)."""
    names = {cid: name for cid, name, _ in _SCENES}
    cameras = [
        {
            "id": cid,
            "name": names.get(cid, cid),
            "url": url,
            "events": {"min_frames": 3, "off_delay": 2.0},
            "zones": [{"name": "left", "points": _LEFT_HALF}],
        }
        for cid, url in urls.items()
    ]
    return Settings.model_validate(
        {"server": {"host": host, "port": port}, "storage": {"path": str(data)}, "cameras": cameras}
    )


def run_demo(port: int, cameras: int, data: Path | None) -> None:
    """Start the simulated cameras and serve the demo until interrupted."""
    from clients.sim import SceneSpec
    from server.app import StartupError, listen_socket
    from server.storage_lock import StorageInUse, check_not_in_use

    specs = {
        cid: SceneSpec(width=640, height=360, fps=10.0, loop_seconds=24.0, **params)  # type: ignore[arg-type]
        for cid, _, params in _SCENES[:cameras]
    }
    # The port first: one already in use is reported before the cameras are prepared.
    sock = listen_socket("127.0.0.1", port)
    if data is not None:
        # So is a data directory another motionhub holds, naming the option given here
        # (the server's own refusal would name storage.path, a setting the demo has none of).
        try:
            check_not_in_use(data, "--data")
        except StorageInUse as exc:
            sock.close()
            raise StartupError(str(exc)) from None
    click.echo(f"motionhub demo: preparing {cameras} simulated cameras...", err=True)
    # uvicorn shuts down on SIGTERM and then raises it again with the handler found before
    # it started; by default that ends the process before the simulator and the temporary
    # directory are cleaned up.
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        _serve_demo(sock, specs, data)
    except _Terminated:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _serve_demo(sock: socket.socket, specs: dict[str, SceneSpec], data: Path | None) -> None:
    from server.app import run

    port: int = sock.getsockname()[1]
    with (
        _start_simulator(specs, port + 1 if port < 65535 else None) as sim,
        tempfile.TemporaryDirectory(prefix="motionhub-demo-") as tmp,
    ):
        urls = {cid: sim.mjpeg_url_for(cid) for cid in specs}
        settings = demo_settings(urls, port, data or Path(tmp))
        click.echo(f"motionhub demo: data in {settings.storage.path}; Ctrl+C to stop", err=True)

        def ready(url: str) -> None:
            # Only now: the dashboard answers as soon as the URL is shown.
            click.echo(f"motionhub demo: dashboard at {url}", err=False)

        run(settings, sock, on_ready=ready)


def _start_simulator(specs: dict[str, SceneSpec], stable: int | None) -> HttpCamera:
    """The running simulator, on port ``stable`` if it can be had, else on a free port.

    A stable port keeps camera URLs valid across runs that share ``--data``. Nothing
    listening there is no proof it can be bound (an outgoing connection may hold it as its
    local port, or another program may take it first), so only a failed start tells.
    """
    from clients.sim import HttpCamera, SimulatorError

    if stable is not None:
        try:
            return HttpCamera(specs, port=stable).start()
        except SimulatorError:
            pass
    return HttpCamera(specs).start()
