"""Validated detector configuration: tuning knobs, zones and masks.

Every numeric field has bounds and a description, and unknown keys are rejected, so a bad
value fails where the config is built rather than deep inside the detector.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

__all__ = ["DetectorConfig", "DetectorTuning", "Polygon", "Zone"]

_Coord = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
_Point = tuple[_Coord, _Coord]

_Outline = Annotated[tuple[_Point, ...], Field(min_length=3, max_length=64)]

_NO_AREA = "points enclose no area (they are all on one line)"
_NO_FILL = "points enclose no area (the outline only runs back over itself)"
_FLAT = 1e-12
"""Twice the area of a triangle this small is rounding, not a shape."""


def _encloses_area(points: tuple[tuple[float, float], ...]) -> bool:
    """Whether ``points`` are not all on one line (or all the same point)."""
    (x0, y0), rest = points[0], points[1:]
    far = max(rest, key=lambda p: abs(p[0] - x0) + abs(p[1] - y0))
    dx, dy = far[0] - x0, far[1] - y0
    return any(abs(dx * (y - y0) - dy * (x - x0)) > _FLAT for x, y in rest)


def _crossing_xs(points: tuple[tuple[float, float], ...]) -> list[float]:
    """The x of every vertex and of every point where two edges of the outline cross."""
    n = len(points)
    edges = [(points[i], points[(i + 1) % n]) for i in range(n)]
    xs = {x for x, _ in points}
    for i, ((ax, ay), (bx, by)) in enumerate(edges):
        ex, ey = bx - ax, by - ay
        for (cx, cy), (dx, dy) in edges[i + 1 :]:
            fx, fy = dx - cx, dy - cy
            det = ex * fy - ey * fx
            if det == 0.0:
                continue  # parallel: any overlap starts and ends at vertices
            t = ((cx - ax) * fy - (cy - ay) * fx) / det
            u = ((cx - ax) * ey - (cy - ay) * ex) / det
            if 0.0 <= t <= 1.0 and 0.0 <= u <= 1.0:
                xs.add(ax + t * ex)
    return sorted(xs)


def _filled_area(points: tuple[tuple[float, float], ...]) -> float:
    """The area the outline covers when filled (even-odd rule, as a polygon fill draws it).

    Between two neighbouring vertex or crossing x values no edges cross, so the covered height
    changes linearly and its value at the middle times the width is that slab's area. An outline
    that runs back over itself (A, B, C, B, A) covers nothing, while a figure-of-eight whose
    signed (shoelace) areas cancel still covers both loops.
    """
    n = len(points)
    edges = [(points[i], points[(i + 1) % n]) for i in range(n)]
    xs = _crossing_xs(points)
    area = 0.0
    for left, right in pairwise(xs):
        mid = (left + right) / 2
        ys = sorted(
            ay + (by - ay) * (mid - ax) / (bx - ax)
            for (ax, ay), (bx, by) in edges
            if min(ax, bx) < mid < max(ax, bx)
        )
        # A line between vertices crosses a closed outline an even number of times.
        covered = sum(top - bottom for bottom, top in zip(ys[::2], ys[1::2], strict=False))
        area += (right - left) * covered
    return area


def _area_problem(points: tuple[tuple[float, float], ...]) -> str | None:
    """Why ``points`` enclose no area, or None when they do."""
    if not _encloses_area(points):
        return _NO_AREA
    if 2 * _filled_area(points) <= _FLAT:
        return _NO_FILL
    return None


def _check_area(points: tuple[tuple[float, float], ...]) -> tuple[tuple[float, float], ...]:
    problem = _area_problem(points)
    if problem is not None:
        raise ValueError(f"the mask's {problem}")
    return points


Polygon = Annotated[_Outline, AfterValidator(_check_area)]
"""A polygon in relative frame coordinates: 3 to 64 ``(x, y)`` points, each within 0..1,
not all on one line and not only running back over itself."""


class DetectorTuning(BaseModel):
    """Every numeric and behavioural knob of the motion detector (no zones or masks).

    The defaults suit a typical fixed security camera. Time-based fields are in seconds and use
    the timestamps given to :meth:`MotionDetector.detect`, or ``nominal_fps`` when there are none.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_width: int = Field(
        default=240,
        ge=32,
        le=1920,
        description="Largest working width in pixels; frames are shrunk (by an integer step, "
        "or bilinearly when the ratio is below 2) until they fit max_width and max_height.",
    )
    max_height: int = Field(
        default=180,
        ge=32,
        le=1080,
        description="Largest working height in pixels (see max_width).",
    )
    sensitivity: int = Field(
        default=50,
        ge=0,
        le=100,
        description="0 = only strong, large changes count; 100 = faint changes count. Scales the "
        "noise-adaptive threshold.",
    )
    threshold: int = Field(
        default=0,
        ge=0,
        le=255,
        description="Fixed per-pixel luma difference that counts as change; 0 = automatic, from "
        "the measured sensor and compression noise.",
    )
    min_area: float = Field(
        default=0.0002,
        ge=0.0,
        le=0.5,
        description="Smallest blob reported, as a fraction of the frame area.",
    )
    nominal_fps: float = Field(
        default=10.0,
        gt=0.0,
        le=240.0,
        description="Frame rate assumed when detect() is called without timestamps.",
    )
    warmup_frames: int = Field(
        default=1,
        ge=0,
        le=10_000,
        description="Frames after start or reset during which no motion is reported.",
    )
    background_seconds: float = Field(
        default=5.0,
        ge=0.1,
        le=3600.0,
        description="Time constant of the slow background learning once warmed up.",
    )
    absorb_seconds: float = Field(
        default=60.0,
        ge=0.5,
        le=86_400.0,
        description="A change that stays still this long (a parked car) becomes background.",
    )
    lighting_fraction: float = Field(
        default=0.08,
        ge=0.02,
        le=1.0,
        description="Changed fraction of the frame from which the detector checks whether a "
        "global change (light switch, IR/day flip, exposure step, camera move) explains it; "
        "if so it re-learns instead of reporting motion.",
    )
    shadows: bool = Field(
        default=False,
        description="Also drop cast shadows: areas darker than the background by 0.6..0.88 "
        "whose texture survives. Off by default: on luma alone it also takes parts of dark "
        "objects. Light added without new edges (glare, reflections, foam, smoke) is always "
        "dropped.",
    )
    stabilize: bool = Field(
        default=True,
        description="Compensate small global shifts (camera shake, slow pan) before comparing.",
    )


class Zone(BaseModel):
    """A named polygon in relative coordinates; motion is reported per zone."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="Zone name: letters, digits, '_' and '-'.",
    )
    # Checked with the name below, so that the error says which zone.
    points: _Outline = Field(description="The zone outline, relative coordinates 0..1.")

    @model_validator(mode="after")
    def _has_area(self) -> Zone:
        problem = _area_problem(self.points)
        if problem is not None:
            raise ValueError(f"zone {self.name!r}: its {problem}")
        return self


class DetectorConfig(DetectorTuning):
    """Full detector configuration: the tuning plus zones and masks."""

    zones: tuple[Zone, ...] = Field(
        default=(), max_length=32, description="Named areas that report motion separately."
    )
    masks: tuple[Polygon, ...] = Field(
        default=(), max_length=32, description="Areas ignored entirely (timestamps, trees)."
    )

    @model_validator(mode="after")
    def _unique_zone_names(self) -> DetectorConfig:
        names = [z.name for z in self.zones]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"zone names must be unique, repeated: {', '.join(dupes)}")
        return self
