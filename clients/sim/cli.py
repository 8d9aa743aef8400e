"""``motionhub sim``: run simulated cameras until Ctrl-C or SIGTERM."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from clients.sim.http_camera import HttpCamera
    from clients.sim.rtsp import RtspCamera

__all__ = ["sim_command"]

DRIFT_AMPLITUDE = 0.15
DEFAULT_LOOP_S = 24.0
_WATCH_S = 0.5


def _size(_ctx: click.Context, _param: click.Parameter, value: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"expected WIDTHxHEIGHT, e.g. 1280x720, got {value!r}") from None
    if not (32 <= w <= 3840 and 32 <= h <= 2160) or w % 2 or h % 2:
        raise click.BadParameter(f"{value}: sides must be even, 32..3840 x 32..2160")
    return (w, h)


class _StopRequest:
    """Whether SIGINT or SIGTERM arrived. The handler only sets this flag: a handler runs
    on the main thread wherever that was interrupted, and ``threading.Event.set`` there
    deadlocks when the interrupted code holds the event's lock (as ``Event.wait`` does at
    moments), so the watch loop polls the flag instead of waiting on an event."""

    requested = False


@contextmanager
def _stop_requested() -> Iterator[_StopRequest]:
    """A :class:`_StopRequest` set by SIGINT or SIGTERM; the previous handlers come back after."""
    stop = _StopRequest()

    def handler(_signum: int, _frame: FrameType | None) -> None:
        stop.requested = True

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--cameras",
    type=click.IntRange(1, 16),
    default=2,
    show_default=True,
    help="How many cameras (cam1, cam2, ...), each with its own scene.",
)
@click.option(
    "--size",
    default="1280x720",
    metavar="WxH",
    show_default=True,
    callback=_size,
    help="Frame size WIDTHxHEIGHT of the procedural scene.",
)
@click.option(
    "--fps",
    type=click.FloatRange(1, 60),
    default=15.0,
    show_default=True,
    help="Frames per second of the procedural scene.",
)
@click.option(
    "--seed",
    type=click.IntRange(0),
    default=0,
    show_default=True,
    help="Scene seed; camera N uses SEED+N-1.",
)
@click.option(
    "--seconds",
    type=click.FloatRange(1, 600),
    default=None,
    help="Loop length (default: 24 s for scenes, the whole file for --video).",
)
@click.option(
    "--active-seconds",
    type=click.FloatRange(0.5, 600),
    default=6.0,
    show_default=True,
    help="Objects move for this long...",
)
@click.option(
    "--still-seconds",
    type=click.FloatRange(0, 600),
    default=6.0,
    show_default=True,
    help="...then the scene is still for this long, repeating.",
)
@click.option("--lighting-drift", is_flag=True, help="Add a slow brightness drift.")
@click.option(
    "--light-switch-every",
    type=click.FloatRange(0.5, 600),
    default=None,
    metavar="SECONDS",
    help="Toggle a sudden brightness change this often.",
)
@click.option(
    "--video",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Serve this video file (looped) instead of a scene.",
)
@click.option(
    "--rtsp/--no-rtsp",
    default=True,
    show_default=True,
    help="Serve RTSP (needs GStreamer's RTSP server and the system python3-gi).",
)
@click.option(
    "--rtsp-host",
    default="127.0.0.1",
    show_default=True,
    help="Address the RTSP server listens on.",
)
@click.option(
    "--rtsp-port",
    type=click.IntRange(0, 65535),
    default=8554,
    show_default=True,
    help="RTSP port (0: any free port).",
)
@click.option("--rtsp-user", default=None, help="Require this user for RTSP (Basic auth).")
@click.option(
    "--rtsp-password",
    default=None,
    envvar="MOTIONHUB_SIM_RTSP_PASSWORD",
    help="Password for --rtsp-user (or $MOTIONHUB_SIM_RTSP_PASSWORD).",
)
@click.option(
    "--http/--no-http",
    default=True,
    show_default=True,
    help="Serve MJPEG streams and JPEG snapshots over HTTP.",
)
@click.option(
    "--http-host",
    default="127.0.0.1",
    show_default=True,
    help="Address the HTTP server listens on (0.0.0.0 in a container).",
)
@click.option(
    "--http-port",
    type=click.IntRange(0, 65535),
    default=8081,
    show_default=True,
    help="HTTP port (0: any free port).",
)
@click.option(
    "--boundary",
    default="frame",
    show_default=True,
    help="Multipart boundary of the MJPEG streams.",
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where rendered clips are cached (default: $XDG_CACHE_HOME/motionhub/sim).",
)
def sim_command(**options: Any) -> None:
    """Serve simulated cameras over RTSP, HTTP MJPEG and HTTP snapshots.

    Each camera shows a procedural street scene (no footage needed): objects cross it
    for --active-seconds, then it stays still for --still-seconds, over and over, with
    sensor noise and optional lighting changes. Or give --video to serve a file.

    Prints the URLs it serves, one per line, then runs until Ctrl-C or SIGTERM:

    \b
      rtsp://127.0.0.1:8554/cam1
      http://127.0.0.1:8081/cam1/mjpeg
      http://127.0.0.1:8081/cam1/snapshot.jpg

    Control a running HTTP camera with POST /control (or /camN/control), JSON
    {"fault": "none|garbage|truncated|stall"} or {"outage_seconds": N}.
    """
    opts = _Options(**options)
    if not opts.rtsp and not opts.http:
        raise click.UsageError("nothing to serve: --no-rtsp and --no-http together")
    if (opts.rtsp_user is None) != (opts.rtsp_password is None):
        raise click.UsageError("--rtsp-user and --rtsp-password go together")
    # Heavy imports (PyAV, OpenCV) only when the command runs, not for `motionhub --help`.
    from clients.sim.encode import SimulatorError
    from clients.sim.rtsp import SYSTEM_PYTHON

    if opts.rtsp and not Path(SYSTEM_PYTHON).exists():
        raise click.UsageError(f"RTSP needs {SYSTEM_PYTHON} with GStreamer; or pass --no-rtsp")
    what = opts.video.name if opts.video else f"{opts.cameras} scene(s) at {opts.size_text}"
    click.echo(f"motionhub sim: preparing {what} (cached after the first run)...", err=True)
    try:
        servers = _servers(opts)
    except SimulatorError as exc:
        raise click.ClickException(str(exc)) from exc
    with _stop_requested() as stop, ExitStack() as stack:
        try:
            for server in servers:
                stack.callback(server.stop)
                server.start()
        except SimulatorError as exc:
            raise click.ClickException(str(exc)) from exc
        for server in servers:
            for line in _urls(server):
                click.echo(line)
        sys.stdout.flush()
        if opts.rtsp_user is not None:
            click.echo(f"motionhub sim: RTSP requires user {opts.rtsp_user!r}", err=True)
        click.echo("motionhub sim: running; Ctrl-C or SIGTERM to stop", err=True)
        while not stop.requested:
            time.sleep(_WATCH_S)
            for server in servers:
                if not server.running:
                    raise click.ClickException(
                        f"{server!r} exited unexpectedly:\n{server.output()}"
                    )
        click.echo("motionhub sim: stopping", err=True)


@dataclass(frozen=True)
class _Options:
    cameras: int
    size: tuple[int, int]
    fps: float
    seed: int
    seconds: float | None
    active_seconds: float
    still_seconds: float
    lighting_drift: bool
    light_switch_every: float | None
    video: Path | None
    rtsp: bool
    rtsp_host: str
    rtsp_port: int
    rtsp_user: str | None
    rtsp_password: str | None
    http: bool
    http_host: str
    http_port: int
    boundary: str
    cache_dir: Path | None

    @property
    def size_text(self) -> str:
        return f"{self.size[0]}x{self.size[1]}"


def _servers(opts: _Options) -> list[RtspCamera | HttpCamera]:
    """Render (or find in the cache) every camera's media and build the servers."""
    from clients.sim.encode import prepare_video, render_clip
    from clients.sim.http_camera import HttpCamera
    from clients.sim.process import free_port
    from clients.sim.rtsp import RtspCamera
    from clients.sim.scene import SceneSpec

    names = [f"cam{i + 1}" for i in range(opts.cameras)]
    sources: dict[str, SceneSpec | Path]
    if opts.video is not None:
        sources = dict.fromkeys(names, opts.video)
    else:
        sources = {
            name: SceneSpec(
                width=opts.size[0],
                height=opts.size[1],
                fps=opts.fps,
                seed=opts.seed + i,
                active_seconds=opts.active_seconds,
                still_seconds=opts.still_seconds,
                lighting_drift=DRIFT_AMPLITUDE if opts.lighting_drift else 0.0,
                light_switch_every=opts.light_switch_every,
                loop_seconds=opts.seconds if opts.seconds is not None else DEFAULT_LOOP_S,
            )
            for i, name in enumerate(names)
        }
    servers: list[RtspCamera | HttpCamera] = []
    if opts.rtsp:
        clips = {
            name: (
                render_clip(src, cache=opts.cache_dir)
                if isinstance(src, SceneSpec)
                else prepare_video(src, max_seconds=opts.seconds, cache=opts.cache_dir)
            )
            for name, src in sources.items()
        }
        servers.append(
            RtspCamera(
                clips,
                port=opts.rtsp_port or free_port(),
                host=opts.rtsp_host,
                user=opts.rtsp_user,
                password=opts.rtsp_password,
            )
        )
    if opts.http:
        servers.append(
            HttpCamera(
                sources,
                port=opts.http_port or free_port(),
                host=opts.http_host,
                seconds=opts.seconds if opts.video is not None else None,
                boundary=opts.boundary,
                cache=opts.cache_dir,
            )
        )
    return servers


def _urls(server: RtspCamera | HttpCamera) -> list[str]:
    from clients.sim.http_camera import HttpCamera

    if isinstance(server, HttpCamera):
        return [
            url
            for name in server.names
            for url in (server.mjpeg_url_for(name), server.snapshot_url_for(name))
        ]
    return list(server.urls.values())
