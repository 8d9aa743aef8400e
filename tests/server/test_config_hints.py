"""Config mistakes a user makes by hand get a hint at what was meant."""

from __future__ import annotations

import pytest
from config_harness import MINIMAL, errors_of

from server.settings_file import parse_settings


def test_misspelt_keys_suggest_the_key_at_their_place() -> None:
    text = MINIMAL.replace("path: ./motionhub-data", "path: ./d, retention_day: 7")
    text += "    snapshot_intervall: 2\n    detect: {fsp: 5}\n"
    assert errors_of(text) == [
        "cfg.yml:2: storage.retention_day: unknown key; did you mean 'retention_days'?",
        "cfg.yml:6: cameras[0].snapshot_intervall: unknown key; did you mean 'snapshot_interval'?",
        "cfg.yml:7: cameras[0].detect.fsp: unknown key; did you mean 'fps'?",
    ]


def test_errors_come_in_the_order_of_the_file() -> None:
    text = MINIMAL.replace("port: 8000", "port: -1") + "    open_timeout: 0\n    detect: {fps: 0}\n"
    text += "logging: {level: LOUD}\n"
    lines = errors_of(text)
    assert [line.split(":")[1] for line in lines] == ["1", "6", "7", "8"]
    assert lines[0].startswith("cfg.yml:1: server.port: ")
    assert lines[3].startswith("cfg.yml:8: logging.level: ")


def test_a_key_like_none_gets_no_guess() -> None:
    text = MINIMAL + "    zzzz: 1\n"
    assert errors_of(text) == ["cfg.yml:6: cameras[0].zzzz: unknown key"]


def test_an_override_for_a_section_that_does_not_exist_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MOTIONHUB_SERVR__PORT", "9000")
    monkeypatch.setenv("MOTIONHUB_XYZZY__A", "1")
    assert errors_of(MINIMAL) == [
        "MOTIONHUB_SERVR__PORT: no such section 'servr'; did you mean MOTIONHUB_SERVER__...?",
        "MOTIONHUB_XYZZY__A: no such section 'xyzzy'",
    ]


def test_overrides_of_existing_sections_and_other_variables_still_apply(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MOTIONHUB_SERVER__PORT", "9000")
    monkeypatch.setenv("MOTIONHUB_DECODE_SLOTS", "auto")
    assert parse_settings(MINIMAL, "cfg.yml").server.port == 9000
