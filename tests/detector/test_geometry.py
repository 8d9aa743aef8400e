"""Polygon rasterisation on the working grid."""

from __future__ import annotations

import numpy as np
import pytest

from detector.geometry import fill_polygons

LEFT = ((0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0))
RIGHT = ((0.5, 0.0), (1.0, 0.0), (1.0, 1.0), (0.5, 1.0))
TOP = ((0.0, 0.0), (1.0, 0.0), (1.0, 1 / 3), (0.0, 1 / 3))
REST = ((0.0, 1 / 3), (1.0, 1 / 3), (1.0, 1.0), (0.0, 1.0))


@pytest.mark.parametrize(
    "shape", [(135, 240), (120, 213), (9, 9), (8, 240), (540, 960), (1080, 1920)]
)
@pytest.mark.parametrize(("a", "b"), [(LEFT, RIGHT), (TOP, REST)])
def test_polygons_sharing_an_edge_share_no_pixel(
    shape: tuple[int, int], a: tuple[tuple[float, float], ...], b: tuple[tuple[float, float], ...]
) -> None:
    first = fill_polygons(shape, [a]) > 0
    second = fill_polygons(shape, [b]) > 0
    assert not (first & second).any(), "adjacent zones overlap"
    assert (first | second).all(), "adjacent zones leave a gap"


def test_a_polygon_thinner_than_a_pixel_keeps_the_pixels_it_touches() -> None:
    sliver = ((0.5, 0.1), (0.51, 0.1), (0.51, 0.9), (0.5, 0.9))
    filled = fill_polygons((20, 20), [sliver])
    assert np.count_nonzero(filled) >= 14
    assert set(np.unique(filled)) == {0, 255}
