"""Configuration bounds: every bad value fails where the config is built, naming the field."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import ValidationError

from detector import DetectorConfig, DetectorTuning, Zone

SQUARE = ((0.1, 0.1), (0.5, 0.1), (0.5, 0.5), (0.1, 0.5))


def test_defaults_are_valid_and_frozen() -> None:
    cfg = DetectorConfig()
    assert 0 <= cfg.sensitivity <= 100
    assert cfg.threshold == 0
    assert cfg.zones == ()
    assert cfg.masks == ()
    with pytest.raises(ValidationError):
        cfg.sensitivity = 10  # type: ignore[misc]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("sensitivity", 101),
        ("sensitivity", -1),
        ("threshold", 256),
        ("threshold", -1),
        ("min_area", 0.9),
        ("min_area", -0.1),
        ("max_width", 8),
        ("max_height", 5000),
        ("nominal_fps", 0),
        ("absorb_seconds", 0.0),
        ("background_seconds", 0.0),
        ("warmup_frames", -1),
        ("lighting_fraction", 0.0),
    ],
)
def test_out_of_bounds_values_are_rejected(field: str, value: Any) -> None:
    with pytest.raises(ValidationError) as err:
        DetectorConfig.model_validate({field: value})
    assert field in str(err.value)


def test_unknown_keys_are_rejected() -> None:
    with pytest.raises(ValidationError, match="bogus"):
        DetectorTuning.model_validate({"bogus": 1})


def test_tuning_holds_no_zones_or_masks() -> None:
    assert "zones" not in DetectorTuning.model_fields
    assert "masks" not in DetectorTuning.model_fields
    with pytest.raises(ValidationError):
        DetectorTuning.model_validate({"zones": []})


@pytest.mark.parametrize(
    "points",
    [
        ((0.1, 0.1), (0.2, 0.2)),  # too few
        tuple((0.5, i / 100) for i in range(65)),  # too many
        ((0.1, 0.1), (1.2, 0.1), (0.5, 0.5)),  # outside 0..1
        ((0.1, -0.1), (0.2, 0.1), (0.5, 0.5)),
    ],
    ids=["2-points", "65-points", "x-above-1", "y-below-0"],
)
def test_bad_polygons_are_rejected(points: tuple[tuple[float, float], ...]) -> None:
    with pytest.raises(ValidationError):
        DetectorConfig(masks=(points,))
    with pytest.raises(ValidationError):
        Zone(name="z", points=points)


FLAT = {
    "one-point-thrice": ((0.5, 0.5), (0.5, 0.5), (0.5, 0.5)),
    "diagonal": ((0.1, 0.1), (0.2, 0.2), (0.3, 0.3), (0.7, 0.7)),
    "vertical-with-repeats": ((0.3, 0.1), (0.3, 0.1), (0.3, 0.9), (0.3, 0.4)),
}


@pytest.mark.parametrize("points", FLAT.values(), ids=FLAT.keys())
def test_a_zone_enclosing_no_area_is_refused_by_name(
    points: tuple[tuple[float, float], ...],
) -> None:
    with pytest.raises(ValidationError, match="zone 'door': its points enclose no area"):
        Zone(name="door", points=points)


@pytest.mark.parametrize("points", FLAT.values(), ids=FLAT.keys())
def test_a_mask_enclosing_no_area_is_refused_at_its_index(
    points: tuple[tuple[float, float], ...],
) -> None:
    with pytest.raises(ValidationError) as info:
        DetectorConfig(masks=(SQUARE, points))
    (error,) = info.value.errors()
    assert error["loc"] == ("masks", 1)
    assert "the mask's points enclose no area" in error["msg"]


DOUBLED_BACK = {
    "there-and-back": ((0.1, 0.1), (0.5, 0.9), (0.9, 0.2), (0.5, 0.9), (0.1, 0.1)),
    "star-of-spokes": ((0.5, 0.5), (0.1, 0.1), (0.5, 0.5), (0.9, 0.1), (0.5, 0.5), (0.5, 0.9)),
}


@pytest.mark.parametrize("points", DOUBLED_BACK.values(), ids=DOUBLED_BACK.keys())
def test_an_outline_running_back_over_itself_is_refused(
    points: tuple[tuple[float, float], ...],
) -> None:
    message = "its points enclose no area (the outline only runs back over itself)"
    with pytest.raises(ValidationError, match=rf"zone 'door': {re.escape(message)}"):
        Zone(name="door", points=points)
    with pytest.raises(ValidationError) as info:
        DetectorConfig(masks=(SQUARE, points))
    (error,) = info.value.errors()
    assert error["loc"] == ("masks", 1)
    assert "the mask's points enclose no area (the outline only runs back" in error["msg"]


def test_thin_and_crossed_polygons_still_enclose_area() -> None:
    sliver = ((0.1, 0.1), (0.9, 0.1), (0.9, 0.1001))
    bowtie = ((0.0, 0.0), (1.0, 1.0), (1.0, 0.0), (0.0, 1.0))  # its signed areas cancel
    cfg = DetectorConfig(zones=(Zone(name="z", points=sliver),), masks=(sliver, bowtie))
    assert cfg.masks == (sliver, bowtie)


@pytest.mark.parametrize("name", ["", "has space", "a/b", "x" * 65])
def test_bad_zone_names_are_rejected(name: str) -> None:
    with pytest.raises(ValidationError):
        Zone(name=name, points=SQUARE)


def test_duplicate_zone_names_are_rejected() -> None:
    z = Zone(name="door", points=SQUARE)
    with pytest.raises(ValidationError, match="door"):
        DetectorConfig(zones=(z, z))


def test_config_round_trips_through_json() -> None:
    cfg = DetectorConfig(sensitivity=70, zones=(Zone(name="drive-way_1", points=SQUARE),))
    again = DetectorConfig.model_validate_json(cfg.model_dump_json())
    assert again == cfg


def test_a_tuning_subclass_builds_a_config() -> None:
    class CameraTuning(DetectorTuning):
        enabled: bool = True
        fps: float = 10.0

    tuning = CameraTuning(sensitivity=30, fps=5.0)
    cfg = DetectorConfig(**tuning.model_dump(exclude={"enabled", "fps"}), masks=(SQUARE,))
    assert cfg.sensitivity == 30
    assert cfg.masks == (SQUARE,)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_polygon_point_must_be_a_finite_number(bad: float) -> None:
    with pytest.raises(ValidationError) as info:
        Zone(name="door", points=((bad, 0.1), (0.5, 0.5), (0.2, 0.9)))
    assert any(e["type"] == "finite_number" for e in info.value.errors())
