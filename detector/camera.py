"""Following the camera: the picture moves as a whole (a pan, a shake, a zoom), not objects in it.

When the change is spread over the picture and large, sudden or lasting, the camera may have
moved. Whole-pixel shifts (from row and column profiles) and similarity transforms (from tracked
corners; detector/stabilize.py estimates both) are tried against the model, and one is kept only
if it explains most of the change. The follower then moves the background model itself and
hands back the move, so the detector carries its own per-pixel state (the trust map) along.
Motion that is not kept builds up as a drift against the previous frame, to be followed later.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, cast

import cv2
import numpy as np
import numpy.typing as npt

from detector._cv import cvs
from detector.background import Background, shift_into
from detector.stabilize import estimate_shift, estimate_similarity

__all__ = ["CAMERA_FRAMES", "CameraFollower", "CameraMove", "Shift", "Warp", "widespread"]

U8 = npt.NDArray[np.uint8]
F64 = npt.NDArray[np.float64]

IDENTITY: F64 = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
"""The 2 x 3 identity transform."""

CAMERA_FRACTION = 0.02
"""Changed fraction from which a sudden (or lasting) change is checked for a camera shift."""
CAMERA_EVERY = 16
SPREAD = 0.25
"""Share of coarse-grid cells that must see change before a global cause is considered."""
CAMERA_FRAMES = 8
"""Frames during which the camera is checked for shifts after it last moved."""
WARP_FRAMES = 5
"""Frames of fast re-learning after the model was warped (its repeated interpolation blurs it)."""
FOLLOW_GAIN = 0.7
"""While following a moving camera, a warp is kept when it leaves under this share of the
change (else the model falls further behind with every frame)."""
CAMERA_GAIN = 0.6
"""A shift or warp of the model is kept when it leaves under this share of the change."""
PAN_HINT = 0.9
"""A shift guess that leaves under this share of the change hints at camera motion."""


def widespread(fg: U8) -> bool:
    """Whether the change ``fg`` touches at least ``SPREAD`` of the cells of a coarse grid: a
    camera move or a change of light touches most of them, objects only a few."""
    h, w = fg.shape
    # Cropped to a multiple of the grid, the area resize takes its fast integer path.
    cells = cv2.resize(fg[: h - h % 6, : w - w % 8], (8, 6), interpolation=cv2.INTER_AREA)
    return cv2.countNonZero(cvs.compare(cells, 5, cv2.CMP_GT)) / 48.0 >= SPREAD


def _compose(second: F64, first: F64) -> F64:
    """The 2 x 3 transform applying ``first`` then ``second``."""
    return second[:, :2] @ first + np.hstack([np.zeros((2, 2)), second[:, 2:]])


@dataclass(frozen=True, slots=True)
class Shift:
    """The model was moved by whole pixels: its content now lies ``dx``, ``dy`` further on."""

    dx: int
    dy: int
    relearn_frames: ClassVar[int] = 0
    """Frames of fast re-learning the model needs after this move."""

    def carry(self, image: U8) -> U8:
        """A per-pixel map of the model moved along with it (0 where the frame came into view)."""
        moved = np.zeros_like(image)
        shift_into(moved, image, self.dx, self.dy)
        return moved


@dataclass(frozen=True, slots=True, eq=False)
class Warp:
    """The model was warped by the 2 x 3 similarity ``transform`` (zoom, rotation, pan);
    ``seen`` is 255 where the warped model has a source pixel."""

    transform: F64
    seen: U8
    relearn_frames: ClassVar[int] = WARP_FRAMES
    """Frames of fast re-learning the model needs after this move."""

    def carry(self, image: U8) -> U8:
        """A per-pixel map of the model warped along with it (0 where the frame came into
        view)."""
        h, w = image.shape
        warped = cv2.warpAffine(image, self.transform, (w, h), flags=cv2.INTER_NEAREST)
        return cast(U8, cv2.bitwise_and(warped, self.seen))


CameraMove = Shift | Warp
"""A move of the model that the follower kept."""


class CameraFollower:
    """Whether the camera moved, and by how much: the frames left to keep checking it after it
    last moved, and the motion built up against the model but not applied to it yet."""

    def __init__(self) -> None:
        self.forget()

    def forget(self) -> None:
        """Start over: the camera is taken as still and the model as aligned with it."""
        self._left = 0
        """Frames left during which the camera is checked whatever the change."""
        self._warped_left = 0
        """Frames left during which a recent warp lets the corner tracking run."""
        self._drift = IDENTITY.copy()
        """The camera motion since the model was last moved, not applied to it yet."""

    def forget_drift(self) -> None:
        """The model was just taken from the current frame: no motion has built up against it
        (though the camera may still be moving)."""
        self._drift = IDENTITY.copy()

    @property
    def following(self) -> bool:
        """Whether the model was moved with the camera within the last ``CAMERA_FRAMES`` checks."""
        return self._left > 0

    def check(
        self,
        changed: float,
        fg: U8,
        *,
        last_changed: float,
        frame: int,
        lighting_fraction: float,
    ) -> bool:
        """Whether to look for a camera move on frame number ``frame`` with the change ``fg``
        (``changed`` of the picture, ``last_changed`` on the frame before): right after one,
        or when the change is spread over the picture and is large, sudden (a bump) or lasting
        (a slow drift)."""
        if self._left > 0:
            return True
        if changed < CAMERA_FRACTION:
            return False
        if not (
            changed > lighting_fraction or changed > 2.0 * last_changed or frame % CAMERA_EVERY == 0
        ):
            return False
        return widespread(fg)

    def follow(
        self, g: U8, prev: U8 | None, bg: Background, *, floor: int, valid: U8 | None
    ) -> CameraMove | None:
        """Move the model ``bg`` with the camera if a move explains most of its change against
        the frame ``g`` (``prev`` is the frame before); returns the move kept, if any.

        Change is counted where the distance to the model exceeds ``floor`` within ``valid``.
        Two whole-pixel shifts are guessed: since the previous frame (reliable while the model
        was aligned with it) and from the model itself (recovers a drift that built up slowly).
        A similarity warp (zoom, rotation, sub-pixel drift) is kept instead if it explains the
        change better still.
        """
        following = self._left > 0
        if following:
            self._left -= 1
        if self._warped_left > 0:
            self._warped_left -= 1
        reach = max(3, g.shape[1] // 8)
        guesses = {tuple(round(v) for v in estimate_shift(bg.u8, g, reach))}
        if prev is not None:
            guesses.add(tuple(round(v) for v in estimate_shift(prev, g, reach)))
        guesses.discard((0, 0))
        if not guesses and self._warped_left == 0:
            return None  # no shift to try, and no recent warp to go on following
        base = bg.count_beyond(g, floor, valid)
        best: tuple[int, int] | None = None
        best_count = CAMERA_GAIN * base
        closest = base
        for ix, iy in guesses:
            hi, lo = bg.shifted_envelope(ix, iy)
            moved = bg.count_beyond(g, floor, valid, hi, lo)
            closest = min(closest, moved)
            if moved < best_count:
                best, best_count = (ix, iy), moved
        # Zoom, rotation or a sub-pixel drift: a similarity fit of the model to the frame,
        # kept if it explains the change better than the best shift.
        bar = best_count
        if following and best is None:
            # Already following a moving camera: any warp that explains part of the change keeps
            # the model closer than none (it would fall further behind with every frame).
            bar = FOLLOW_GAIN * base
        # The corner tracking costs about a millisecond: only when a whole-pixel shift
        # explained some of the change or a warp was kept recently (not for traffic in front of
        # a still camera).
        if closest < PAN_HINT * base or self._warped_left > 0:
            warp = self._follow_similarity(g, prev, bg, bar, floor=floor, valid=valid)
            if warp is not None:
                self._left = CAMERA_FRAMES
                return warp
        if best is None:
            return None
        dx, dy = best
        bg.shift(dx, dy, g)
        # What the whole-pixel shift left of the motion stays in the drift.
        self._drift = self._drift - np.array([[0.0, 0.0, dx], [0.0, 0.0, dy]])
        self._left = CAMERA_FRAMES
        return Shift(dx, dy)

    def _follow_similarity(
        self, g: U8, prev: U8 | None, bg: Background, bar: float, *, floor: int, valid: U8 | None
    ) -> Warp | None:
        """Warp the model by a similarity (zoom, rotation, pan) that takes it to ``g``, if one
        leaves fewer than ``bar`` changed pixels.

        Two guesses: the camera motion since the previous frame composed with the drift the
        model has built up against that frame (reliable: two sharp frames, a small motion), and
        a direct fit of the model to the frame. A motion that is not kept adds to the drift.
        """
        guesses: list[F64] = []
        step = estimate_similarity(prev, g) if prev is not None else None
        drift = self._drift
        if step is not None:
            drift = _compose(step, self._drift)
            guesses.append(drift)
        direct = estimate_similarity(bg.u8, g)
        if direct is not None:
            guesses.append(direct)
        best: Warp | None = None
        best_count = bar
        area = g.shape[0] * g.shape[1]
        for m in guesses:
            hi, lo, seen = bg.warped_envelope(m)
            moved = bg.count_beyond(g, floor, valid, hi, lo)
            # Cells that came into view never count as change: compare the change per cell
            # the model still covers, so a large spurious motion does not win by hiding it.
            moved = round(moved * area / max(1, cv2.countNonZero(seen)))
            if moved < best_count:
                best, best_count = Warp(m, seen), moved
        if best is None:
            self._drift = drift
            return None
        bg.warp(best.transform, g, best.seen)
        self._warped_left = CAMERA_FRAMES
        self._drift = IDENTITY.copy()
        return best
