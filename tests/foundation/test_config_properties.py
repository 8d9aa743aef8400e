"""Property tests: no input, however malformed, makes the config loader fail other than cleanly."""

from __future__ import annotations

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.config import Settings
from server.settings_file import ConfigError, parse_settings

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(max_size=12), inner, max_size=4),
    ),
    max_leaves=20,
)
keys = st.sampled_from(
    ["server", "storage", "logging", "mqtt", "cameras", "security", "bogus", "id", "url", "port"]
)
documents = st.dictionaries(keys, values, max_size=5)


def check(text: str) -> None:
    result: Settings | ConfigError
    try:
        result = parse_settings(text, "prop.yml")
    except ConfigError as exc:
        result = exc
    if isinstance(result, ConfigError):
        assert result.lines
        for line in result.lines:
            assert line.startswith("prop.yml")
            assert "\n" not in line
    else:
        assert isinstance(result, Settings)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_structured_garbage_gives_config_error_or_settings(doc: dict[str, object]) -> None:
    check(yaml.safe_dump(doc))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_gives_config_error_or_settings(text: str) -> None:
    check(text)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["id", "url", "kind", "detect", "zones", "x"]), values))
def test_garbage_camera_entries(camera: dict[str, object]) -> None:
    check(yaml.safe_dump({"cameras": [camera]}))
