"""The motion detector: downscale, compare with an adaptive background, filter, report.

Per frame on a small working grid: shrink and blur; threshold the distance outside the
background's envelope with a noise-adaptive threshold; follow global changes (gain, camera
shift, light switch, IR flip) instead of reporting them; drop light-only changes; group blobs;
absorb ghosts; learn selectively. docs/detector.md describes each step.
"""

from __future__ import annotations

import math
from typing import cast

import cv2
import numpy as np
import numpy.typing as npt

from detector._cv import K3, cvs
from detector.background import Background
from detector.blobs import Blob, Contour, drop_faint, find_blobs
from detector.camera import CameraFollower, widespread
from detector.config import DetectorConfig
from detector.geometry import MIN_SIDE, Scaler, fill_polygons, working_scaler
from detector.lighting import fit_tone_curve
from detector.outcome import make_result
from detector.overlay import FixedOverlay
from detector.result import MotionResult
from detector.shadows import light_only
from detector.still import absorb_still

__all__ = ["MotionDetector"]

U8 = npt.NDArray[np.uint8]

SCENE_FRACTION = 0.5
"""Changed fraction above which, unexplained, the model restarts from the current frame."""
LEVEL_JUMP = 0.002
LEVEL_EVERY = 4
LEVEL_STEP = 2.5
"""A mean level change (grey levels) that also triggers the lighting check."""
LIGHTING_FRAMES = 5
"""Frames of fast re-learning after a lighting change."""
LIGHTING_ALPHA = 0.5
FAST_FRAMES = 30
"""Frames of every-frame learning at start (the learning rate is 1/n then)."""
LEARN_EVERY = 4
STATIC_EVERY = 4
TRUST_SECONDS = 3.0
"""Quiet time after which a pixel's background counts as seen, not guessed from a first frame
that may hold objects (which leave ghosts when they move)."""


def _frame_shape(shape: object) -> tuple[int, int]:
    """``shape`` as ``(h, w)``, refusing anything but two whole numbers."""
    values: tuple[object, ...] = (
        tuple(shape) if isinstance(shape, (tuple, list, np.ndarray)) else ()
    )
    if len(values) != 2:
        raise ValueError(f"frame_shape must be (height, width), got {shape!r}")
    h, w = values
    if not (isinstance(h, (int, np.integer)) and isinstance(w, (int, np.integer))) or (
        isinstance(h, bool) or isinstance(w, bool)
    ):
        raise ValueError(f"frame_shape must be two integers (height, width), got {shape!r}")
    return int(h), int(w)


def _config(config: object) -> DetectorConfig:
    """``config`` checked again: ``model_copy(update=...)`` and ``model_construct`` skip the
    bounds, and a value outside them fails deep in OpenCV or NumPy, or silently misbehaves."""
    if not isinstance(config, DetectorConfig):
        raise TypeError(f"expected a DetectorConfig, got {type(config).__name__}")
    return type(config).model_validate(config.model_dump())


class MotionDetector:
    """Finds moving objects in a stream of luma frames of one fixed shape.

    Not thread-safe: use one detector per camera, from one thread at a time.
    """

    def __init__(self, frame_shape: tuple[int, int], config: DetectorConfig | None = None) -> None:
        self._frame_shape = _frame_shape(frame_shape)
        if min(self._frame_shape) < MIN_SIDE:
            raise ValueError(
                f"frame shape {frame_shape} is too small (at least {MIN_SIDE} x {MIN_SIDE})"
            )
        self._config = _config(config if config is not None else DetectorConfig())
        self._bg: Background | None = None
        self._camera = CameraFollower()
        self._overlay = FixedOverlay()
        self._apply_config(self._config, keep_background=False)

    @property
    def config(self) -> DetectorConfig:
        """The configuration in use."""
        return self._config

    @property
    def frame_shape(self) -> tuple[int, int]:
        """The input frame shape (h, w) this detector expects."""
        return self._frame_shape

    @property
    def working_shape(self) -> tuple[int, int]:
        """The (h, w) of the grid the detector works on (and of ``MotionResult.mask``)."""
        return self._scaler.work_shape

    def update_config(self, config: DetectorConfig) -> None:
        """Switch to ``config`` live, keeping the learned background unless the working size
        changes."""
        self._config = _config(config)
        keep = working_scaler(self._frame_shape, config.max_width, config.max_height) == (
            self._scaler
        )
        self._apply_config(config, keep_background=keep)

    def reset(self) -> None:
        """Forget the learned background and start warming up again."""
        self._bg = None
        self._frames = 0
        self._learned = 0
        self._lighting_left = 0
        self._last_changed = 0.0
        self._last_count = 0
        self._last_ts: float | None = None
        self._fps = self._config.nominal_fps
        self._prev: U8 | None = None
        self._tick = 0
        self._reported: U8 | None = None
        """The previous frame's mask (None after a restart of the model)."""
        self._forget_still()
        self._untrust()
        self._camera.forget()
        self._overlay.forget()

    def _forget_still(self) -> None:
        """Restart the counts of how long each pixel stayed foreground and stayed still (the
        model they refer to was just replaced or moved)."""
        self._still = np.zeros(self._scaler.work_shape, np.uint8)
        self._static = np.zeros(self._scaler.work_shape, np.uint8)

    def _untrust(self) -> None:
        """Mark the whole background as a guess (it was just taken from one frame): count each
        pixel's quiet learning steps until all have been seen (then ``_trust`` is None)."""
        self._trust: U8 | None = np.zeros(self._scaler.work_shape, np.uint8)

    def _apply_config(self, config: DetectorConfig, *, keep_background: bool) -> None:
        self._scaler: Scaler = working_scaler(
            self._frame_shape, config.max_width, config.max_height
        )
        shape = self._scaler.work_shape
        masked = fill_polygons(shape, config.masks)
        self._valid: U8 | None = cast(U8, cv2.bitwise_not(masked)) if config.masks else None
        self._valid_count = max(1, shape[0] * shape[1] - cv2.countNonZero(masked))
        zone_masks = [(z.name, fill_polygons(shape, [z.points])) for z in config.zones]
        if self._valid is not None:
            # A zone's score is over its unmasked part.
            zone_masks = [(n, cast(U8, cv2.bitwise_and(zm, self._valid))) for n, zm in zone_masks]
        self._zones = [(name, zm, max(1, cv2.countNonZero(zm))) for name, zm in zone_masks]
        self._min_area_px = max(2.0, config.min_area * shape[0] * shape[1])
        s = config.sensitivity / 100.0
        self._k = 2.0 + 2.0 * (1.0 - s)
        self._floor = round(3.0 + 10.0 * (1.0 - s))
        if config.threshold > 0:
            self._floor = config.threshold
        if not keep_background or self._bg is None:
            self.reset()
        else:
            if self._last_ts is None:
                # No timestamps so far: the clock is the nominal rate, which may have changed.
                self._fps = config.nominal_fps
            self._set_threshold(self._bg)
            if not config.stabilize:
                # No more following: nor the steps that run while the camera is followed.
                self._camera.forget()

    # -- thresholds and clock -------------------------------------------------------------

    def _threshold(self, bg: Background) -> U8:
        if self._config.threshold > 0:
            return np.full(bg.u8.shape, self._floor, np.uint8)
        thr = cv2.convertScaleAbs(bg.noise, alpha=self._k)
        return cast(U8, cvs.max(thr, self._floor))

    def _set_threshold(self, bg: Background) -> None:
        self._thr = self._threshold(bg)
        self._set_bounds(bg)

    def _set_bounds(self, bg: Background) -> None:
        """The band a pixel may move in without counting as change: the envelope widened by
        the threshold. Testing the frame against it is ``distance > threshold`` in one call."""
        self._upper = cast(U8, cv2.add(bg.hi, self._thr))
        self._lower = cast(U8, cv2.subtract(bg.lo, self._thr))

    def _clock(self, timestamp: float | None) -> None:
        if timestamp is None:
            return
        if not math.isfinite(timestamp):
            # A NaN or infinite time would stop the frame-rate estimate for good (no later time
            # compares greater), so it is refused before it is kept.
            raise ValueError(f"timestamp must be finite seconds, got {timestamp!r}")
        if self._last_ts is not None and timestamp > self._last_ts:
            fps = 1.0 / (timestamp - self._last_ts)
            self._fps += 0.1 * (min(fps, 240.0) - self._fps)
        self._last_ts = timestamp

    def _changed(self, g: U8) -> tuple[U8, int]:
        """The foreground of ``g`` against the model and threshold in use, and its size."""
        inside = cv2.inRange(g, self._lower, self._upper)
        if self._valid is not None:
            fg = cast(U8, cv2.subtract(self._valid, inside))
        else:
            fg = cast(U8, cv2.bitwise_not(inside))
        return fg, cv2.countNonZero(fg)

    # -- the frame ---------------------------------------------------------------------------

    def detect(self, luma: npt.NDArray[np.uint8], timestamp: float | None = None) -> MotionResult:
        """Analyse one frame.

        ``luma`` is the 2-D uint8 Y plane (or grayscale image) of ``frame_shape``; it may be a
        strided view. ``timestamp`` is monotonic seconds; without it frames are assumed to come
        at ``config.nominal_fps``.
        """
        self._check_frame(luma)
        self._clock(timestamp)
        g = cast(U8, cv2.GaussianBlur(self._scaler.shrink(luma), (3, 3), 0))
        bg = self._bg
        if bg is None:
            self._bg = Background(g)
            self._set_threshold(self._bg)
            self._frames = 1
            self._learned = 1
            self._prev = g
            return self._empty(warming=self._config.warmup_frames > 0)
        self._frames += 1
        self._learned += 1
        fg, count = self._changed(g)
        changed = count / self._valid_count
        if self._config.stabilize:
            fg, count = self._follow_camera(g, bg, fg, changed, count)
            changed = count / self._valid_count
        self._last_changed = changed
        # The level check costs four sums: run it when the change jumped (an exposure
        # step) and every few frames (a drift).
        jump = count > 2 * self._last_count + LEVEL_JUMP * self._valid_count
        if changed > LEVEL_JUMP and (jump or self._frames % LEVEL_EVERY == 0):
            relevelled = self._relevel(g, bg, fg, changed)
            if relevelled is not None:
                fg, count = relevelled
                changed = count / self._valid_count
        self._last_count = count
        if self._global_change(g, bg, fg, changed, count):
            # Light, exposure, an IR flip, or a camera move no shift explains: start over from
            # this frame rather than report the whole picture.
            return self._restart(g)
        lighting = self._lighting_left > 0
        if lighting:
            self._lighting_left -= 1
        overlay: U8 | None = None
        if self._camera.following and self._prev is not None:
            fg, count, overlay = self._overlay.drop(g, self._prev, fg, count)
        else:
            self._overlay.forget()
        blobs: list[Blob] = []
        held: list[Contour] = []
        if count:
            blobs, held = self._objects(g, bg, fg)
        # An overlay is not learned either: the model keeps the scene behind it; nor are blobs
        # left out for a thin core over a moving background (they may be an object).
        busy = fg if overlay is None else cast(U8, cv2.bitwise_or(fg, overlay))
        if held:
            busy = busy.copy() if busy is fg else busy
            cv2.drawContours(busy, held, -1, 255, -1)
        self._learn(g, bg, busy, lighting=lighting)
        self._prev = g
        # A copy, as the caller owns the result's mask and may change it; none while nothing
        # changed (an empty mask and no mask match no blob alike), so a still scene pays nothing.
        self._reported = fg.copy() if count else None
        return self._result(fg, blobs, lighting)

    def _check_frame(self, luma: object) -> None:
        """Refuse what :meth:`detect` cannot take, saying what it expected."""
        if not isinstance(luma, np.ndarray):
            raise TypeError(f"expected a NumPy uint8 array, got {type(luma).__name__}")
        if luma.ndim != 2 or luma.shape != self._frame_shape:
            raise ValueError(f"expected a 2-D frame of shape {self._frame_shape}, got {luma.shape}")
        if luma.dtype != np.uint8:
            raise ValueError(f"expected uint8 luma, got {luma.dtype}")

    def _objects(self, g: U8, bg: Background, fg: U8) -> tuple[list[Blob], list[Contour]]:
        """From the changed pixels to object blobs (``fg`` is updated in place): drop
        light-only change and specks, close small gaps, outline and fill blobs, drop faint
        ones over a moving background, and (on some frames) absorb still ones that are not
        objects. Also returns the outlines of the faint blobs that must not be learned."""
        # Only the rectangle around the change needs the light test.
        x, y, w, h = cv2.boundingRect(fg)
        # A margin keeps the 3x3 contrast right at the edges, and OpenCV would take an array
        # of four or fewer elements for a scalar.
        fh, fw = fg.shape
        roi = (
            slice(max(0, y - 4), min(fh, y + h + 4)),
            slice(max(0, x - 4), min(fw, x + w + 4)),
        )
        # The background's local contrast (3x3 max - min) is its envelope's width.
        contrast = cast(U8, cv2.subtract(bg.hi[roi], bg.lo[roi]))
        light = light_only(g[roi], bg.u8[roi], contrast, fg[roi], shadows=self._config.shadows)
        cv2.subtract(fg[roi], light, dst=fg[roi])
        # Outside the rectangle (and its margin) the mask is empty, so the speck filter and
        # the blob search need only the rectangle.
        cv2.medianBlur(fg[roi].copy(), 3, dst=fg[roi])
        # Close gaps of up to four pixels so the pieces of one object (split where it matched
        # the background) form one outline, which the fill below makes whole. Two 3x3 passes
        # give the 5x5 closing, in two thirds of the time.
        fg[roi] = cv2.morphologyEx(fg[roi], cv2.MORPH_CLOSE, K3, iterations=2)
        blobs = find_blobs(fg, roi, self._min_area_px)
        held: list[Contour] = []
        if blobs and self._config.threshold == 0:
            blobs, held = drop_faint(
                blobs,
                fg,
                g,
                (bg.hi, bg.lo),
                thr=self._thr,
                noise=bg.noise,
                reported=self._reported,
            )
        if blobs:
            # Fill each blob's outline: an object whose flat inside was taken for light (or
            # matched the background) is whole again.
            cv2.drawContours(fg, [b.contour for b in blobs], -1, 255, -1)
            if self._valid is not None:
                # The fill closes over a mask an object surrounds: that area stays ignored.
                cv2.bitwise_and(fg, self._valid, dst=fg)
        # Still-blob checks run on the frames the background does not learn on.
        if blobs and self._frames % STATIC_EVERY == 2:
            blobs = self._drop_still(g, bg, fg, blobs)
        return blobs, held

    def _follow_camera(
        self, g: U8, bg: Background, fg: U8, changed: float, count: int
    ) -> tuple[U8, int]:
        """Let the camera follower move the model if the camera moved. The threshold and the
        trust map follow the model, the still counts restart (the model they refer to moved),
        and a warped model learns fast for a while. Returns the change that is left."""
        camera = self._camera
        if not camera.check(
            changed,
            fg,
            last_changed=self._last_changed,
            frame=self._frames,
            lighting_fraction=self._config.lighting_fraction,
        ):
            return fg, count
        move = camera.follow(g, self._prev, bg, floor=self._floor, valid=self._valid)
        if move is None:
            return fg, count
        self._set_threshold(bg)
        self._forget_still()
        if self._trust is not None:
            self._trust = move.carry(self._trust)
        self._lighting_left = max(self._lighting_left, move.relearn_frames)
        return self._changed(g)

    def _relevel(self, g: U8, bg: Background, fg: U8, changed: float) -> tuple[U8, int] | None:
        """Follow a slow or small global gain change (clouds, exposure creep): when the pixels
        that did not change disagree with the model on the mean level, scale the model."""
        if changed > self._config.lighting_fraction:
            return None
        now = self._quiet_mean(g, fg)
        was = self._quiet_mean(bg.u8, fg)
        if abs(now - was) <= LEVEL_STEP or was < 1.0:
            return None
        bg.scale(now / was)
        self._set_threshold(bg)
        return self._changed(g)

    def _quiet_mean(self, img: U8, fg: U8) -> float:
        """Mean of ``img`` over the valid pixels outside ``fg``: two plain sums, since a masked
        mean costs ten times more."""
        valid = img if self._valid is None else cv2.bitwise_and(img, self._valid)
        quiet = self._valid_count - cv2.countNonZero(fg)
        if quiet <= 0:
            return 0.0
        total = cv2.sumElems(valid)[0] - cv2.sumElems(cv2.bitwise_and(img, fg))[0]
        return float(total) / quiet

    def _global_change(self, g: U8, bg: Background, fg: U8, changed: float, count: int) -> bool:
        """Whether the change since the background is global rather than objects."""
        if changed > SCENE_FRACTION:
            return True
        if changed > self._config.lighting_fraction and widespread(fg):
            return self._coherent(g, bg, count)
        return False

    def _coherent(self, g: U8, bg: Background, count: int) -> bool:
        """Whether a global tone curve (light switch, IR/day flip, exposure step, drift)
        explains most of the change between ``g`` and the background."""
        tone = fit_tone_curve(g, bg.u8)
        if tone.change < 1.5:
            return False
        lut = np.clip(np.rint(tone.inverse), 0, 255).astype(np.uint8)
        relit = cast(U8, cv2.LUT(bg.u8, lut))
        hi = cast(U8, cv2.dilate(relit, K3))
        lo = cast(U8, cv2.erode(relit, K3))
        new_count = bg.count_beyond(g, self._thr, self._valid, hi, lo)
        return new_count < 0.5 * count

    def _restart(self, g: U8) -> MotionResult:
        """Take ``g`` as the new background (keeping the noise levels) after a global change,
        and learn fast for a while; this frame reports no motion."""
        old = self._bg
        self._bg = Background(g)
        if old is not None:
            self._bg.noise = old.noise
        self._set_threshold(self._bg)
        self._learned = 1
        self._prev = g
        self._lighting_left = LIGHTING_FRAMES
        self._camera.forget_drift()
        self._reported = None
        self._forget_still()
        self._untrust()
        return self._empty(warming=False, lighting=True)

    def _drop_still(self, g: U8, bg: Background, fg: U8, blobs: list[Blob]) -> list[Blob]:
        prev = self._prev if self._prev is not None else g
        unsure: U8 | None = None
        if self._trust is not None:
            unsure = cast(U8, cvs.compare(self._trust, self._trust_frames(), cv2.CMP_LT))
            if not cv2.countNonZero(unsure):
                self._trust = None
                unsure = None
        return absorb_still(
            g,
            prev,
            bg,
            fg,
            blobs,
            counts=self._static,
            moved=max(2, self._floor // 2),
            unsure=unsure,
        )

    def _trust_frames(self) -> int:
        return min(255, math.ceil(TRUST_SECONDS * self._fps))

    def _learn(self, g: U8, bg: Background, fg: U8, *, lighting: bool) -> None:
        cfg = self._config
        n = self._learned
        if not (lighting or n <= FAST_FRAMES or n % LEARN_EVERY == 0):
            return
        step = 1 if (lighting or n <= FAST_FRAMES) else LEARN_EVERY
        slow = step / max(1.0, cfg.background_seconds * self._fps)
        alpha = max(1.0 / n, slow)
        if lighting:
            alpha = max(alpha, LIGHTING_ALPHA)
        quiet = cast(U8, cv2.bitwise_not(fg))
        bg.learn(g, alpha, quiet)
        if self._trust is not None:
            cvs.add(self._trust, step, dst=self._trust, mask=quiet)
        noise = step == 1 or n % (2 * LEARN_EVERY) == 0
        if noise:
            # The envelope has not moved since the frame was tested (only the mean learned).
            bg.learn_noise(bg.distance(g), quiet)
        # Parked objects: count how long each pixel stays foreground, in ticks sized so the
        # absorb time fits in 8 bits.
        absorb_frames = max(1.0, cfg.absorb_seconds * self._fps / step)
        per_tick = max(1, math.ceil(absorb_frames / 250.0))
        self._tick += 1
        if self._tick >= per_tick:
            self._tick = 0
            self._still = cast(U8, cvs.add(self._still, 1, mask=fg))
            limit = max(1, round(absorb_frames / per_tick))
            done = cast(U8, cvs.compare(self._still, limit, cv2.CMP_GE))
            if cv2.countNonZero(done):
                bg.adopt(g, done)
                self._still = cast(U8, cv2.bitwise_and(self._still, cv2.bitwise_not(done)))
        bg.refresh()
        if noise:
            self._set_threshold(bg)
        else:
            self._set_bounds(bg)

    # -- results -----------------------------------------------------------------------------

    def _result(
        self, fg: U8, blobs: list[Blob], lighting: bool, warming: bool | None = None
    ) -> MotionResult:
        return make_result(
            fg,
            blobs,
            scaler=self._scaler,
            zones=self._zones,
            valid_count=self._valid_count,
            warming=self._frames <= self._config.warmup_frames if warming is None else warming,
            lighting=lighting,
        )

    def _empty(self, *, warming: bool, lighting: bool = False) -> MotionResult:
        return self._result(np.zeros(self._scaler.work_shape, np.uint8), [], lighting, warming)
