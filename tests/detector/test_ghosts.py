"""Start-up ghosts: an object in view when the detector starts is in its first background, and
the place it leaves must not stay "motion" until ``absorb_seconds``; a real object that stops
must."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from detector_harness import background, camera, still_frames, with_box

from clients.sim import SceneSpec
from clients.sim.scene import Scene
from detector import MotionDetector

H, W = 360, 640
FPS = 10.0
ENDS_WITHIN = 20
"""Frames (2 s at FPS) after which the motion of an object that left must have ended."""


def striped(h: int, w: int) -> np.ndarray:
    """A scene with strong texture (stripes, like road markings or a fence) where the ghost
    is: the revealed background brings edges of its own along the ghost's outline."""
    scene = background(h, w)
    xx = np.arange(w, dtype=np.float32)
    scene[100:280] += 45.0 * np.sign(np.sin(xx / 5.0))
    return np.clip(scene, 5, 250).astype(np.float32)


def test_object_in_the_first_frame_that_moves_away_leaves_no_ghost() -> None:
    rng = np.random.default_rng(20)
    scene = striped(H, W)
    det = MotionDetector((H, W))
    t = 0.0
    start = (80, 140, 200, 240)
    # It stands for half a second, then drives out of view to the right.
    for _ in range(5):
        det.detect(camera(with_box(scene, start, 40.0), rng), t)
        t += 1.0 / FPS
    seen = []
    for x in range(start[0], W, 16):
        box = (x, start[1], min(W, x + 120), start[3])
        seen.append(det.detect(camera(with_box(scene, box, 40.0), rng), t).motion)
        t += 1.0 / FPS
    assert all(seen[3:]), "the object driving away is motion"
    after = []
    for frame in still_frames(scene, 60, rng):
        after.append(det.detect(frame, t).motion)
        t += 1.0 / FPS
    assert not any(after[ENDS_WITHIN:]), f"ghost still reported: {after}"


def test_an_object_that_stops_after_the_start_stays_motion() -> None:
    rng = np.random.default_rng(21)
    scene = background(H, W)
    det = MotionDetector((H, W))
    t = 0.0
    for frame in still_frames(scene, 50, rng):
        assert not det.detect(frame, t).motion
        t += 1.0 / FPS
    parked = with_box(scene, (220, 150, 340, 230), 30.0)
    states = []
    for frame in still_frames(parked, 300, rng):
        states.append(det.detect(frame, t).motion)
        t += 1.0 / FPS
    assert all(states), "a parked object is motion for absorb_seconds (60 s by default)"


@pytest.mark.parametrize("start_seconds", [1.0, 2.0, 3.0, 4.5])
def test_simulated_street_joined_mid_activity_ends_its_event(start_seconds: float) -> None:
    spec = SceneSpec(width=W, height=H, fps=FPS)
    scene = Scene(spec)
    det = MotionDetector((H, W))
    first = round(start_seconds * FPS)
    still_start = round(spec.active_seconds * FPS)
    active, still = [], []
    for i in range(first, round(spec.period * FPS)):
        luma = cv2.cvtColor(scene.frame(i), cv2.COLOR_BGR2GRAY)
        r = det.detect(luma, i / FPS)
        (active if i < still_start else still).append(r.motion)
    assert any(active), "objects crossing are motion"
    assert not any(still[ENDS_WITHIN:]), f"motion in the still phase: {still}"
