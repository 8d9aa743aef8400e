"""The documented minimal config file, and the error lines a bad one gets."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from server.settings_file import ConfigError, load_settings, parse_settings

MINIMAL = """\
server: {host: 127.0.0.1, port: 8000}
storage: {path: ./motionhub-data}
cameras:
  - id: cam1
    url: rtsp://user:pass@192.168.1.20:554/stream1
"""


def minimal_with_camera_url(url: str) -> str:
    """:data:`MINIMAL` with its camera's URL replaced by ``url`` (line 5 still holds it)."""
    return MINIMAL.replace("rtsp://user:pass@192.168.1.20:554/stream1", url)


def errors_of(text: str, environ: Mapping[str, str] | None = None) -> list[str]:
    """The lines of the :class:`ConfigError` that ``text`` (as ``cfg.yml``) must raise."""
    with pytest.raises(ConfigError) as info:
        parse_settings(text, "cfg.yml", environ=environ)
    return info.value.lines


def file_errors_of(path: Path) -> list[str]:
    """The lines of the :class:`ConfigError` that loading the config file ``path`` must
    raise (relative paths in it taken from its folder)."""
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    return info.value.lines
