"""The camera follower on its own: a background model and frames of a moving camera."""

from __future__ import annotations

from typing import cast

import cv2
import numpy as np
import numpy.typing as npt
from detector_harness import background

from detector.background import Background
from detector.camera import CAMERA_FRAMES, CameraFollower, Shift, Warp

U8 = npt.NDArray[np.uint8]

H, W = 135, 240
FLOOR = 6
WIDE = background(H + 40, W + 40, seed=41)


def view(x0: int, y0: int) -> U8:
    """The camera's frame with its top-left corner at (x0, y0) of the wide scene."""
    return np.clip(WIDE[y0 : y0 + H, x0 : x0 + W], 0, 255).astype(np.uint8)


def changed(bg: Background, frame: U8) -> int:
    """Pixels of ``frame`` beyond the floor from the model's envelope."""
    return int(np.count_nonzero(bg.distance(frame) > FLOOR))


def test_a_whole_pixel_pan_is_followed_and_leaves_little_change() -> None:
    before, after = view(20, 20), view(25, 17)
    bg = Background(before)
    assert changed(bg, after) > 0.1 * H * W
    follower = CameraFollower()
    everywhere = np.full((H, W), 255, np.uint8)
    assert follower.check(0.5, everywhere, last_changed=0.0, frame=1, lighting_fraction=0.08)
    move = follower.follow(after, before, bg, floor=FLOOR, valid=None)
    # The camera moved right and up: the scene's content moved left and down.
    assert move == Shift(-5, 3)
    assert follower.following
    assert changed(bg, after) < 0.01 * H * W
    trust = np.full((H, W), 7, np.uint8)
    carried = move.carry(trust)
    assert carried[H // 2, W // 2] == 7
    assert not carried[:, -5:].any()  # came into view: not seen yet


def test_a_zoom_while_panning_is_followed_by_a_warp() -> None:
    scale = 1.03
    # Zooming in by 3 % about the centre while panning: the picture also moves 6 pixels right.
    zoom = np.array([[scale, 0.0, (1 - scale) * W / 2 + 6], [0.0, scale, (1 - scale) * H / 2]])
    before = view(20, 20)
    after = cast(U8, cv2.warpAffine(before, zoom, (W, H), flags=cv2.INTER_LINEAR))
    bg = Background(before)
    assert changed(bg, after) > 0.1 * H * W
    follower = CameraFollower()
    move = follower.follow(after, before, bg, floor=FLOOR, valid=None)
    assert isinstance(move, Warp)
    assert abs(move.transform[0, 0] - scale) < 0.01
    assert move.relearn_frames > 0
    assert changed(bg, after) < 0.02 * H * W


def test_a_still_camera_is_left_alone_and_following_ends() -> None:
    frame = view(20, 20)
    bg = Background(frame)
    follower = CameraFollower()
    assert follower.follow(frame, frame, bg, floor=FLOOR, valid=None) is None
    assert not follower.following
    assert not follower.check(
        0.01, np.zeros((H, W), np.uint8), last_changed=0.0, frame=1, lighting_fraction=0.08
    )
    assert follower.follow(view(23, 20), frame, bg, floor=FLOOR, valid=None) is not None
    for _ in range(CAMERA_FRAMES):
        assert follower.following
        follower.follow(view(23, 20), view(23, 20), bg, floor=FLOOR, valid=None)
    assert not follower.following
