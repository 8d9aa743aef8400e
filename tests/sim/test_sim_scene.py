"""The procedural scene: deterministic, the right shape, motion only when scheduled."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from pydantic import ValidationError
from sim_harness import changed_fraction

from clients.sim import Scene, SceneSpec


def gray(frame: np.ndarray) -> np.ndarray:
    return np.asarray(frame.mean(axis=2), np.uint8)


@pytest.mark.parametrize(("width", "height"), [(320, 180), (640, 360), (1920, 1080)])
def test_frames_are_bgr_uint8_of_the_requested_size(width: int, height: int) -> None:
    frame = Scene(SceneSpec(width=width, height=height)).frame(5)
    assert frame.shape == (height, width, 3)
    assert frame.dtype == np.uint8
    assert frame.flags.c_contiguous
    # A textured picture, not a flat fill.
    assert frame.std() > 20


def test_same_seed_same_pixels_other_seed_other_layout() -> None:
    spec = SceneSpec(width=320, height=180, seed=4)
    a, b = Scene(spec), Scene(spec)
    for i in (0, 17, 100):
        assert np.array_equal(a.frame(i), b.frame(i))
    other = Scene(spec.model_copy(update={"seed": 5})).frame(0)
    assert changed_fraction(gray(a.frame(0)), gray(other)) > 0.2


def test_scene_is_periodic_with_its_loop() -> None:
    spec = SceneSpec(width=320, height=180, fps=10, loop_seconds=4)
    scene = Scene(spec)
    assert spec.frame_count == 40
    assert np.array_equal(scene.frame(3), scene.frame(43))


def test_objects_move_in_active_phases_and_the_scene_is_still_otherwise() -> None:
    spec = SceneSpec(width=320, height=180, fps=10, active_seconds=3, still_seconds=3)
    scene = Scene(spec)
    fps = int(spec.fps)
    for start in (0.0, 6.0, 12.0):  # three active phases
        assert spec.is_active(start + 1)
        a, b = (gray(scene.frame(round((start + t) * fps))) for t in (1.0, 1.5))
        assert changed_fraction(a, b) > 0.003, f"no motion at t={start + 1}"
    for start in (3.0, 9.0):  # the still phases between them
        assert not spec.is_active(start + 1)
        frames = [gray(scene.frame(round((start + t) * fps))) for t in (0.2, 1.0, 2.8)]
        for a in frames[1:]:
            assert changed_fraction(frames[0], a) < 0.0005, f"motion at t={start}"


def test_sensor_noise_changes_every_frame_a_little() -> None:
    spec = SceneSpec(width=320, height=180, still_seconds=6, active_seconds=1, noise=2.0)
    scene = Scene(spec)
    a, b = (scene.frame(round(3 * spec.fps) + i).astype(np.int16) for i in (0, 1))
    diff = np.abs(a - b)
    assert 0.5 < diff.mean() < 4
    quiet = Scene(spec.model_copy(update={"noise": 0.0}))
    assert np.array_equal(quiet.frame(45), quiet.frame(46))


def test_lighting_drift_is_slow_and_light_switch_is_sudden() -> None:
    still = SceneSpec(width=320, height=180, fps=10, active_seconds=0.5, still_seconds=9.5)
    drift = Scene(still.model_copy(update={"lighting_drift": 0.2, "loop_seconds": 10}))
    means = [float(drift.frame(i).mean()) for i in range(100)]
    assert max(means) - min(means) > 20  # it does drift...
    steps = [abs(a - b) for a, b in itertools.pairwise(means)]
    assert max(steps) < 2.5  # ...slowly: under 2.5 grey levels from one frame to the next

    switch = Scene(still.model_copy(update={"light_switch_every": 3, "light_switch_gain": 0.5}))
    before, after = switch.frame(29).mean(), switch.frame(30).mean()  # t = 2.9 s, 3.0 s
    assert after < 0.6 * before
    assert switch.frame(60).mean() == pytest.approx(before, rel=0.05)  # back on at 6 s


@pytest.mark.parametrize(
    "fields",
    [{"width": 321}, {"height": 7}, {"fps": 0}, {"lighting_drift": 0.9}, {"bogus": 1}],
    ids=["odd-width", "tiny", "zero-fps", "drift", "unknown"],
)
def test_bad_specs_are_rejected(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        SceneSpec(**fields)  # type: ignore[arg-type]


def test_key_depends_on_every_field() -> None:
    base = SceneSpec()
    assert base.key() == SceneSpec().key()
    assert base.key() != SceneSpec(seed=1).key()
    assert base.key() != SceneSpec(noise=1.0).key()
