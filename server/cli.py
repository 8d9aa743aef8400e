"""The ``motionhub`` command line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import click

from clients.listen import listen_command
from clients.sim.cli import sim_command
from clients.watch import watch_command
from server.config import Settings
from server.settings_file import ConfigError, load_settings

__all__ = ["main"]

CONFIG_ERROR_EXIT = 2
STARTUP_FAILED = 3
"""``serve`` could not start (the cause is in the log, in one line)."""
INTERRUPTED = 130
"""``serve`` stopped by Ctrl-C (SIGINT) after a graceful shutdown (128 + SIGINT, as a shell
reports it)."""


def fail_config(exc: ConfigError) -> NoReturn:
    """Print each config problem on one line and exit with status 2."""
    for line in exc.lines:
        click.echo(f"motionhub: config error: {line}", err=True)
    sys.exit(CONFIG_ERROR_EXIT)


def check_environment() -> None:
    """Exit cleanly, as for a config error, on an unusable ``MOTIONHUB_*`` variable."""
    from server.cameras.slots import fixed_slots

    try:
        fixed_slots()
    except ValueError as exc:
        fail_config(ConfigError([str(exc)]))


def settings_from(config: Path | None, host: str | None, port: int | None) -> Settings:
    """Load settings and apply command-line overrides, exiting cleanly on any config error
    (in the file or in the environment)."""
    check_environment()
    try:
        settings = load_settings(config)
        if host is not None:
            settings.server.host = host
        if port is not None:
            settings.server.port = port
    except ConfigError as exc:
        fail_config(exc)
    return settings


def check_storage(config: Path, settings: Settings, *, create: bool) -> None:
    """Exit cleanly, as for a config error, if ``storage.path`` cannot be a directory (and,
    with ``create``, if it cannot be created), rather than failing inside the server."""
    path = settings.storage.path
    where = f"{config}: storage.path"
    if path.exists() and not path.is_dir():
        fail_config(ConfigError([f"{where}: {path} exists and is not a directory"]))
    parent = path.absolute()
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        fail_config(ConfigError([f"{where}: {parent} is not a directory"]))
    if create:
        try:
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            fail_config(ConfigError([f"{where}: cannot create {path}: {reason}"]))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="motionhub")
def main() -> None:
    """motionhub: real-time motion detection for IP cameras.

    Pulls frames from RTSP, MJPEG, snapshot, file and V4L2 cameras, detects motion,
    records events with snapshots, and pushes them to a live dashboard over
    WebSockets and to IoT devices and Home Assistant over MQTT.
    """


@main.command()
@click.option(
    "--config",
    "config",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="YAML config file.",
)
def check(config: Path) -> None:
    """Validate a config file and exit (status 2 on any problem)."""
    settings = settings_from(config, None, None)
    check_storage(config, settings, create=False)
    click.echo(f"{config}: OK, {len(settings.cameras)} camera(s)")


@main.command()
@click.option(
    "--config",
    "config",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="YAML config file (see docs/configuration.md).",
)
@click.option("--host", default=None, help="Override server.host.")
@click.option("--port", type=click.IntRange(0, 65535), default=None, help="Override server.port.")
def serve(config: Path, host: str | None, port: int | None) -> None:
    """Run the server with the cameras in a config file."""
    settings = settings_from(config, host, port)
    check_storage(config, settings, create=True)
    from server.app import StartupError, run
    from server.heap import keep_large_blocks_mapped

    keep_large_blocks_mapped()
    try:
        run(settings)
    except StartupError:
        sys.exit(STARTUP_FAILED)  # the cause is logged already
    except KeyboardInterrupt:
        # uvicorn has shut down gracefully and re-raised the SIGINT it caught; without this,
        # click reports a normal Ctrl-C stop as "Aborted!" with status 1, like a failure.
        sys.exit(INTERRUPTED)


main.add_command(sim_command, name="sim")
main.add_command(watch_command, name="watch")
main.add_command(listen_command, name="listen")


@main.command()
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8000,
    show_default=True,
    help="HTTP port of the dashboard and API (on 127.0.0.1; 0 picks a free one).",
)
@click.option(
    "--cameras",
    type=click.IntRange(1, 3),
    default=3,
    show_default=True,
    help="How many simulated cameras.",
)
@click.option(
    "--data",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Keep events here (default: a temporary directory, removed on exit).",
)
def demo(port: int, cameras: int, data: Path | None) -> None:
    """Run the server on built-in simulated cameras, with the dashboard; nothing to set up."""
    from server.app import StartupError
    from server.demo import run_demo

    check_environment()
    try:
        run_demo(port, cameras, data)
    except StartupError as exc:
        click.echo(f"motionhub demo: {exc}", err=True)
        sys.exit(STARTUP_FAILED)
    except KeyboardInterrupt:
        sys.exit(INTERRUPTED)  # a normal Ctrl-C stop, as for serve


def _register_tools() -> None:
    from server.bench.cli import bench_command
    from server.evaluation.cli import eval_command

    main.add_command(eval_command, name="eval")
    main.add_command(bench_command, name="bench")


_register_tools()


if __name__ == "__main__":
    main()
