"""The config loader: the documented minimal file works, and every bad file gets a clear error."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from config_harness import MINIMAL, errors_of, minimal_with_camera_url
from pydantic import BaseModel, ValidationError

from server.config import CameraSettings, Settings, check_camera_url
from server.settings_file import parse_settings


def test_minimal_file_works_and_mqtt_is_off() -> None:
    s = parse_settings(MINIMAL)
    assert s.server.port == 8000
    assert [c.id for c in s.cameras] == ["cam1"]
    assert s.cameras[0].display_name == "cam1"
    assert s.mqtt is None


def test_mqtt_section_is_accepted() -> None:
    s = parse_settings(MINIMAL + "mqtt: {url: 'mqtt://broker:1883', topic_prefix: home}\n")
    assert s.mqtt is not None
    assert s.mqtt.topic_prefix == "home"
    assert s.mqtt.discovery.enabled


def test_unknown_key_names_path_and_line() -> None:
    lines = errors_of(MINIMAL.replace("port: 8000", "port: 8000, colour: red"))
    assert lines == ["cfg.yml:1: server.colour: unknown key"]


def test_unknown_nested_camera_key() -> None:
    lines = errors_of(MINIMAL + "    fps_limit: 3\n")
    assert lines == ["cfg.yml:6: cameras[0].fps_limit: unknown key"]


def test_unknown_key_with_a_line_break_stays_on_one_line() -> None:
    # "A\n" once passed for a plain key ("$" matches before a final newline) and split the line.
    lines = errors_of("server:\n  ? 'A\n\n    '\n  : null\n")
    assert lines == ['cfg.yml:2: server["A\\n"]: unknown key']


def test_wrong_type_is_reported() -> None:
    (line,) = errors_of(MINIMAL.replace("port: 8000", "port: eighty"))
    assert line.startswith("cfg.yml:1: server.port: ")
    assert "integer" in line


def test_out_of_bounds_is_reported() -> None:
    (line,) = errors_of(MINIMAL.replace("port: 8000", "port: 70000"))
    assert "server.port" in line
    assert "65535" in line


def test_missing_camera_url() -> None:
    lines = errors_of("cameras:\n  - id: cam1\n")
    assert lines == ["cfg.yml:2: cameras[0].url: Field required"]


def test_bad_yaml_gives_line() -> None:
    (line,) = errors_of("server: {host: 127.0.0.1\ncameras: [\n")
    assert line.startswith("cfg.yml:")
    assert "invalid YAML" in line


def test_top_level_must_be_mapping() -> None:
    assert errors_of("- a\n- b\n") == ["cfg.yml: the top level must be a mapping of sections"]


def test_unsupported_scheme_is_rejected_without_echoing_password() -> None:
    (line,) = errors_of(MINIMAL.replace("rtsp://user:pass@", "ftp://user:s3cretpw@"))
    assert "cameras[0].url" in line
    assert "unsupported scheme 'ftp'" in line
    assert "s3cretpw" not in line


def test_duplicate_camera_ids() -> None:
    text = MINIMAL + "  - id: cam1\n    url: rtsp://10.0.0.2/s\n"
    assert errors_of(text) == ["cfg.yml:3: cameras: camera ids must be unique, repeated: cam1"]


def test_env_overrides_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOTIONHUB_SERVER__PORT", "9123")
    monkeypatch.setenv("MOTIONHUB_LOGGING__FORMAT", "json")
    s = parse_settings(MINIMAL)
    assert s.server.port == 9123
    assert s.server.host == "127.0.0.1"
    assert s.logging.format == "json"
    assert s.cameras[0].id == "cam1"


def test_env_bad_value_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOTIONHUB_SERVER__PORT", "-5")
    (line,) = errors_of(MINIMAL)
    assert "server.port" in line


def test_detector_config_carries_zones_and_masks() -> None:
    text = MINIMAL + (
        "    zones: [{name: door, points: [[0, 0], [0.5, 0], [0.5, 0.5]]}]\n"
        "    masks: [[[0.5, 0.5], [1, 0.5], [1, 1]]]\n"
        "    detect: {fps: 4}\n"
    )
    cam = parse_settings(text).cameras[0]
    dc = cam.detector_config()
    assert [z.name for z in dc.zones] == ["door"]
    assert len(dc.masks) == 1
    assert cam.detect.fps == 4


def test_polygon_points_out_of_range_rejected() -> None:
    text = MINIMAL + "    zones: [{name: door, points: [[0, 0], [1.5, 0], [0.5, 0.5]]}]\n"
    (line,) = errors_of(text)
    assert line.startswith("cfg.yml:6: cameras[0].zones[0].points")


def test_polygons_enclosing_no_area_are_refused_by_zone_name_and_mask_index() -> None:
    text = MINIMAL + (
        "    zones:\n"
        "      - {name: door, points: [[0, 0], [0.5, 0], [0.5, 0.5]]}\n"
        "      - {name: path, points: [[0.2, 0.2], [0.4, 0.4], [0.6, 0.6]]}\n"
        "    masks:\n"
        "      - [[0.5, 0.5], [1, 0.5], [1, 1]]\n"
        "      - [[0.1, 0.1], [0.1, 0.1], [0.1, 0.1]]\n"
    )
    assert errors_of(text) == [
        "cfg.yml:8: cameras[0].zones[1]: zone 'path': its points enclose no area "
        "(they are all on one line)",
        "cfg.yml:11: cameras[0].masks[1]: the mask's points enclose no area "
        "(they are all on one line)",
    ]


def test_outlines_running_back_over_themselves_are_refused() -> None:
    text = MINIMAL + (
        "    zones:\n"
        "      - {name: trail, points: [[0.1, 0.1], [0.5, 0.9], [0.9, 0.2], [0.5, 0.9]]}\n"
        "    masks:\n"
        "      - [[0.2, 0.2], [0.8, 0.3], [0.5, 0.7], [0.8, 0.3], [0.2, 0.2]]\n"
    )
    assert errors_of(text) == [
        "cfg.yml:7: cameras[0].zones[0]: zone 'trail': its points enclose no area "
        "(the outline only runs back over itself)",
        "cfg.yml:9: cameras[0].masks[0]: the mask's points enclose no area "
        "(the outline only runs back over itself)",
    ]


def test_values_come_from_the_environment() -> None:
    text = MINIMAL.replace("user:pass@", "user:${CAM_PASSWORD}@").replace(
        "port: 8000", "port: '${PORT}'"
    )
    text += "mqtt: {url: 'mqtt://broker:1883', password: '${MQTT_PASSWORD}'}\n"
    env = {"CAM_PASSWORD": "s3cr$t{x}", "PORT": "9001", "MQTT_PASSWORD": "${CAM_PASSWORD}"}
    s = parse_settings(text, "cfg.yml", environ=env)
    assert s.cameras[0].url == "rtsp://user:s3cr$t{x}@192.168.1.20:554/stream1"
    assert s.server.port == 9001
    assert s.mqtt is not None
    assert s.mqtt.password is not None
    # A value is taken as it is, never expanded again.
    assert s.mqtt.password.get_secret_value() == "${CAM_PASSWORD}"


def test_an_unset_variable_names_itself_and_its_key_not_a_value() -> None:
    text = MINIMAL.replace("user:pass@", "user:${CAM_PASSWORD}@")
    assert errors_of(text, environ={"OTHER": "hunter2"}) == [
        "cfg.yml:5: cameras[0].url: environment variable CAM_PASSWORD is not set"
        " (write $${ for the literal text ${)"
    ]


def test_escaped_and_lone_dollars_are_kept() -> None:
    text = MINIMAL.replace("user:pass@", "user:pa$$w$rd$${NOT_A_VAR}@")
    s = parse_settings(text, "cfg.yml", environ={})
    assert s.cameras[0].url == "rtsp://user:pa$$w$rd${NOT_A_VAR}@192.168.1.20:554/stream1"


def test_a_variable_may_come_from_a_secret_file(tmp_path: Path) -> None:
    secret = tmp_path / "cam_password"
    secret.write_text("from-a-file\n")
    text = MINIMAL.replace("user:pass@", "user:${CAM_PASSWORD}@")
    s = parse_settings(text, "cfg.yml", environ={"CAM_PASSWORD_FILE": str(secret)})
    assert s.cameras[0].url == "rtsp://user:from-a-file@192.168.1.20:554/stream1"
    # The variable itself wins over its file.
    s = parse_settings(
        text, "cfg.yml", environ={"CAM_PASSWORD": "direct", "CAM_PASSWORD_FILE": str(secret)}
    )
    assert s.cameras[0].url == "rtsp://user:direct@192.168.1.20:554/stream1"
    assert errors_of(text, environ={"CAM_PASSWORD_FILE": str(tmp_path / "none")}) == [
        f"cfg.yml:5: cameras[0].url: CAM_PASSWORD_FILE: cannot read {tmp_path / 'none'}:"
        " No such file or directory"
    ]


@pytest.mark.parametrize("inside", ["PW:-default", " PW ", "1PW", ""])
def test_a_reference_that_is_not_a_name_is_an_error_that_does_not_echo_it(inside: str) -> None:
    text = MINIMAL.replace("user:pass@", "user:ab${" + inside + "}cd@")
    # The exact line: nothing of what was written inside the braces is shown.
    assert errors_of(text, environ={"PW": "x"}) == [
        "cfg.yml:5: cameras[0].url: a ${...} that is not a variable name (letters, digits and"
        " _, not starting with a digit); write $${ for the literal text ${"
    ]


def test_aliases_are_expanded_once_and_keep_sharing() -> None:
    text = (
        "cameras:\n"
        "  - &cam {id: a, url: 'rtsp://u:${PW}@10.0.0.1/s', zones: &z []}\n"
        "  - {id: b, url: 'rtsp://u:${PW}@10.0.0.2/s', zones: *z}\n"
    )
    s = parse_settings(text, "cfg.yml", environ={"PW": "pw1"})
    assert [c.url for c in s.cameras] == ["rtsp://u:pw1@10.0.0.1/s", "rtsp://u:pw1@10.0.0.2/s"]
    # An alias of itself (a cycle) is refused by validation as before, not expanded forever.
    assert errors_of("cameras: &c [*c]\n", environ={})


@pytest.mark.parametrize(
    "url",
    [
        "rtsp://user:S3cretPw#x@127.0.0.1/x",
        "http://user:S3cretPw?x@127.0.0.1:18081/cam1/mjpeg",
        "rtsp://user:S3cret/Pw@127.0.0.1/x",
    ],
    ids=["hash", "question-mark", "slash"],
)
def test_unencoded_password_characters_are_rejected_without_echoing(url: str) -> None:
    (line,) = errors_of(minimal_with_camera_url(url))
    assert line.startswith("cfg.yml:5: cameras[0].url: the credentials cannot be parsed")
    assert "%23" in line
    assert "S3cret" not in line


def test_camera_port_that_is_not_a_number_is_rejected_without_echoing() -> None:
    (line,) = errors_of(MINIMAL.replace(":554/", ":S3cret/"))
    assert "cameras[0].url:" in line
    assert "port" in line
    assert "S3cret" not in line


def test_port_zero_is_refused_for_cameras_and_the_broker() -> None:
    (line,) = errors_of(MINIMAL.replace(":554/", ":0/"))
    assert line.startswith("cfg.yml:5: cameras[0].url: ")
    assert "port 0" in line
    (line,) = errors_of(MINIMAL + "mqtt: {url: 'mqtt://127.0.0.1:0'}\n")
    assert line.startswith("cfg.yml:6: mqtt.url: ")
    assert "port 0" in line


def test_encoded_password_characters_are_accepted() -> None:
    url = "rtsp://user:S3cret%23%2F%3F%40@192.168.1.20:554/stream1?channel=1"
    s = parse_settings(minimal_with_camera_url(url))
    assert s.cameras[0].url == url


@pytest.mark.parametrize(
    "url",
    [
        "rtsp://***:***@192.168.1.20:554/stream1",
        "rtsp://user:***@192.168.1.20:554/stream1",
        "http://192.168.1.20/cgi-bin/snapshot.cgi?user=admin&password=***",
    ],
    ids=["user-and-password", "password", "query"],
)
def test_the_redaction_mask_is_refused_as_credentials(url: str) -> None:
    # A URL copied from the API's output: the camera would answer every attempt with a 401.
    (line,) = errors_of(minimal_with_camera_url(url))
    assert line.startswith("cfg.yml:5: cameras[0].url: the user name, password")
    assert "give the real user name and password" in line


@pytest.mark.parametrize(
    "url", ["mqtt://bob:MqS3cret#Pw@127.0.0.1:1883", "mqtt://h:MqS3cret", "mqtt://b:MqS3cret/x@h"]
)
def test_mqtt_url_with_unparseable_credentials_or_port_is_rejected(url: str) -> None:
    (line,) = errors_of(MINIMAL + f"mqtt: {{url: '{url}'}}\n")
    assert line.startswith("cfg.yml:6: mqtt.url: ")
    assert "MqS3cret" not in line


def test_allowed_networks_error_is_plain() -> None:
    lines = errors_of(
        MINIMAL + "security: {allowed_networks: [10.0.0.0/8, not-a-net, 10.0.0.1/8]}\n"
    )
    assert lines == [
        "cfg.yml:6: security.allowed_networks[1]: not an IP network (e.g. 192.168.1.0/24)",
        "cfg.yml:6: security.allowed_networks[2]: has host bits set: write the network address"
        " (e.g. 192.168.1.0/24)",
    ]


def test_allowed_networks_valid_entries_keep_their_meaning() -> None:
    s = parse_settings(
        MINIMAL + "security: {allowed_networks: [10.0.0.0/8, 10.1.2.3, '::1/128']}\n"
    )
    assert [str(n) for n in s.security.allowed_networks] == ["10.0.0.0/8", "10.1.2.3/32", "::1/128"]


def test_a_repeated_top_level_key_is_an_error_naming_both_lines() -> None:
    text = MINIMAL + "cameras:\n  - id: cam2\n    url: rtsp://10.0.0.2/s\n"
    assert errors_of(text) == ["cfg.yml:6: duplicate key 'cameras' (first at line 3)"]


def test_a_repeated_key_inside_a_camera_is_an_error_naming_its_path() -> None:
    text = MINIMAL + "    detect: {fps: 4}\n    enabled: true\n    detect: {fps: 2}\n"
    assert errors_of(text) == ["cfg.yml:8: cameras[0]: duplicate key 'detect' (first at line 6)"]


def test_merge_keys_and_aliases_are_not_duplicates() -> None:
    text = (
        "base: &d {fps: 4}\n"
        "cameras:\n"
        "  - {id: a, url: 'rtsp://10.0.0.1/s', detect: {<<: *d, enabled: true}}\n"
        "  - {id: b, url: 'rtsp://10.0.0.2/s', detect: *d}\n"
    )
    # Only the unknown top-level key is reported, not a duplicate.
    assert errors_of(text) == ["cfg.yml:1: base: unknown key"]


@pytest.mark.parametrize(
    ("name", "value"),
    [("MOTIONHUB_SERVER__AUTH__TOKENS", "[bad json s3cretvalue"), ("MOTIONHUB_CAMERAS", "notjson")],
)
def test_an_override_that_is_not_json_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    assert errors_of(MINIMAL) == [
        f"{name}: not valid JSON (lists and sections are written in JSON)"
    ]


def test_an_error_in_an_override_names_the_variable_not_a_file_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MOTIONHUB_SERVER__PORT", "abc")
    monkeypatch.setenv("MOTIONHUB_CAMERAS", '[{"id": "cam2", "url": "rtsp://h/x", "foo": 1}]')
    assert errors_of(MINIMAL) == [
        "cfg.yml: server.port (from MOTIONHUB_SERVER__PORT): Input should be a valid integer,"
        " unable to parse string as an integer",
        "cfg.yml: cameras[0].foo (from MOTIONHUB_CAMERAS): unknown key",
    ]


def test_a_file_key_next_to_an_override_keeps_its_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOTIONHUB_SERVER", '{"port": 9000}')
    lines = errors_of(MINIMAL.replace("host: 127.0.0.1", "host: [1]"))
    assert lines == ["cfg.yml:1: server.host: Input should be a valid string"]


def test_cameras_whose_home_assistant_entities_would_clash_are_refused() -> None:
    text = """
cameras:
  - id: a
    url: rtsp://h/1
    zones: [{name: b_motion, points: [[0, 0], [1, 0], [1, 1]]}]
  - id: a_zone_b
    url: rtsp://h/2
"""
    (line,) = errors_of(text)
    assert "cameras 'a' and 'a_zone_b' would share the Home Assistant entity" in line
    assert "'a_zone_b_motion'" in line


@pytest.mark.parametrize(
    "url", ["rtsp://a:Secret6@h:70000/x", "rtsp://h:70000/x", "rtsp://a:Secret6@[::1]:99999/x"]
)
def test_a_camera_port_out_of_range_is_called_so_without_the_password(url: str) -> None:
    with pytest.raises(ValueError, match="port is out of range") as info:
        check_camera_url(url)
    assert "not a number" not in str(info.value)
    assert "Secret6" not in str(info.value)


def _float_paths(model: type[BaseModel], prefix: tuple[str, ...]) -> list[tuple[str, ...]]:
    """Every float setting of ``model``'s tree, as a path of keys."""
    paths = []
    for name, field in model.model_fields.items():
        kind = field.annotation
        if kind is float or kind == float | None:
            paths.append((*prefix, name))
        elif isinstance(kind, type) and issubclass(kind, BaseModel):
            paths += _float_paths(kind, (*prefix, name))
    return paths


FLOAT_SETTINGS = _float_paths(Settings, ()) + _float_paths(CameraSettings, ("cameras",))


def test_the_float_settings_are_found() -> None:
    assert ("cameras", "events", "off_delay") in FLOAT_SETTINGS
    assert ("cameras", "detect", "min_area") in FLOAT_SETTINGS
    assert len(FLOAT_SETTINGS) > 20


@pytest.mark.parametrize("path", FLOAT_SETTINGS, ids=".".join)
@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_every_float_setting_must_be_a_finite_number(path: tuple[str, ...], value: float) -> None:
    doc: dict[str, Any] = {}
    node = doc
    if path[0] == "cameras":
        node = {"id": "c", "url": "rtsp://h/x"}
        doc["cameras"] = [node]
        path = path[1:]
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    with pytest.raises(ValidationError) as info:
        Settings.model_validate(doc)
    (err,) = info.value.errors()
    assert err["type"] == "finite_number", err
