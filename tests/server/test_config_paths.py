"""Relative paths in a config file are taken from the file's folder, not the start folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from config_harness import file_errors_of

from server.settings_file import load_settings


def test_relative_paths_are_taken_from_the_config_files_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    (folder / "certs").mkdir()
    (folder / "certs" / "ca.pem").write_text("")
    cert = tmp_path / "c.pem"
    cert.write_text("")
    config = folder / "motionhub.yml"
    config.write_text(
        "storage: {path: data}\n"
        "security: {media_dir: ../media}\n"
        f"mqtt: {{url: 'mqtts://127.0.0.1:8883', tls: {{ca: certs/ca.pem, cert: {cert}}}}}\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # as under systemd, where the working directory is /
    settings = load_settings(Path("../etc/motionhub.yml"))
    assert settings.storage.path == folder / "data"
    assert settings.security.media_dir == tmp_path / "media"
    assert settings.mqtt is not None
    assert settings.mqtt.tls.ca == folder / "certs" / "ca.pem"
    assert settings.mqtt.tls.cert == cert


def test_a_missing_mqtt_tls_file_is_refused_naming_the_key_and_the_file(tmp_path: Path) -> None:
    config = tmp_path / "motionhub.yml"
    config.write_text("mqtt:\n  url: mqtts://127.0.0.1:8883\n  tls: {ca: certs/ca.pem}\n")
    assert file_errors_of(config) == [
        f"{config}:3: mqtt.tls.ca: no such file: {tmp_path / 'certs' / 'ca.pem'}"
    ]


def test_an_override_from_the_environment_is_taken_as_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "motionhub.yml"
    config.write_text("storage: {path: data}\n")
    monkeypatch.setenv("MOTIONHUB_STORAGE__PATH", "from-env")
    assert load_settings(config).storage.path == Path("from-env")


def test_a_relative_file_camera_url_is_refused_saying_it_must_be_absolute(tmp_path: Path) -> None:
    config = tmp_path / "motionhub.yml"
    config.write_text("cameras:\n  - {id: clip, url: media/clip.mp4}\n")
    assert file_errors_of(config) == [
        f"{config}:2: cameras[0].url: unsupported scheme '(none)'; a video file needs an "
        "absolute path; use one of rtsp, rtsps, http, https, file, an absolute file path or "
        "/dev/videoN"
    ]
