"""A procedural camera scene: textured static background, moving objects, lighting changes.

Everything is drawn with NumPy/OpenCV from a seed, so the same :class:`SceneSpec`
always gives the same pixels and no third-party footage is needed.

The scene follows an *activity schedule*: every period of ``active_seconds +
still_seconds`` starts with objects crossing the view (one of them spans the whole
active window, so motion is continuous while it lasts), followed by a still phase in
which only sensor noise and lighting change. A motion server therefore sees events
start and end at predictable times (:meth:`SceneSpec.is_active`).

The scene is periodic with ``loop_seconds`` so a rendered clip can be looped
forever; pick ``loop_seconds`` as a multiple of the activity period for a seamless
loop (the default is).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["Frame", "Scene", "SceneSpec"]

Frame = npt.NDArray[np.uint8]
"""A BGR image, shape ``(height, width, 3)``, dtype uint8."""

# Bump when the drawing changes, so cached renders of the old look are not reused.
RENDER_VERSION = 2

_NOISE_PAD = 32


class SceneSpec(BaseModel):
    """Everything that determines the pixels of a procedural scene."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    width: int = Field(default=640, ge=32, le=3840, description="Frame width (even).")
    height: int = Field(default=360, ge=32, le=2160, description="Frame height (even).")
    fps: float = Field(default=15.0, gt=0, le=120, description="Frames per second.")
    seed: int = Field(default=0, ge=0, description="Selects the layout and the objects.")
    objects: int = Field(default=3, ge=1, le=16, description="Objects crossing per active phase.")
    active_seconds: float = Field(
        default=6.0, gt=0, description="Length of each phase with moving objects."
    )
    still_seconds: float = Field(
        default=6.0, ge=0, description="Length of each still phase that follows it (0: always on)."
    )
    lighting_drift: float = Field(
        default=0.0,
        ge=0,
        le=0.5,
        description="Relative amplitude of a slow sinusoidal gain drift over one loop (0: off).",
    )
    light_switch_every: float | None = Field(
        default=None,
        gt=0,
        description="Toggle a sudden global gain change every this many seconds (None: off).",
    )
    light_switch_gain: float = Field(
        default=0.55, gt=0, le=2, description="Gain applied while the light is 'switched'."
    )
    noise: float = Field(default=2.0, ge=0, le=20, description="Sensor noise sigma, grey levels.")
    loop_seconds: float = Field(default=24.0, gt=0, le=600, description="The scene repeats after.")

    @model_validator(mode="after")
    def _even_size(self) -> SceneSpec:
        # yuv420p (what H.264 cameras send) needs even dimensions.
        if self.width % 2 or self.height % 2:
            raise ValueError(f"width and height must be even, got {self.width}x{self.height}")
        return self

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)``."""
        return (self.width, self.height)

    @property
    def period(self) -> float:
        """Seconds of one active phase plus one still phase."""
        return self.active_seconds + self.still_seconds

    @property
    def frame_count(self) -> int:
        """Frames in one loop."""
        return max(1, round(self.loop_seconds * self.fps))

    def is_active(self, t: float) -> bool:
        """Whether objects are moving at scene time ``t`` seconds (loop-relative or absolute)."""
        tp = (t % self.loop_seconds) % self.period
        return tp < self.active_seconds

    def gain(self, t: float) -> float:
        """The global brightness gain at scene time ``t`` (1.0 without lighting effects)."""
        t = t % self.loop_seconds
        g = 1.0 + self.lighting_drift * math.sin(2.0 * math.pi * t / self.loop_seconds)
        if self.light_switch_every is not None and int(t // self.light_switch_every) % 2 == 1:
            g *= self.light_switch_gain
        return g

    def key(self) -> str:
        """A short stable hash of every field, used to name cached renders."""
        blob = json.dumps(
            {"v": RENDER_VERSION, **self.model_dump(mode="json")}, sort_keys=True
        ).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


Kind = Literal["car", "person", "bird"]


@dataclass(frozen=True, slots=True)
class _Mover:
    """One object crossing the view during one active phase (times are phase-relative)."""

    kind: Kind
    t0: float
    t1: float
    direction: int  # +1: left to right
    y: float  # vertical centre, fraction of height
    h: float  # height, fraction of frame height
    aspect: float  # width / height
    color: tuple[int, int, int]
    bob: float  # vertical wobble amplitude, fraction of height

    def box(self, tp: float, width: int, height: int) -> tuple[int, int, int, int] | None:
        """Pixel box ``(x, y, w, h)`` at phase time ``tp``, or None when not in the scene."""
        if not self.t0 <= tp < self.t1:
            return None
        oh = max(4, round(self.h * height))
        ow = max(4, round(oh * self.aspect))
        frac = (tp - self.t0) / (self.t1 - self.t0)
        if self.direction < 0:
            frac = 1.0 - frac
        # Enter fully off-screen and leave fully off-screen, so the object's whole
        # visit lies inside the active window.
        x = round(-ow + frac * (width + ow))
        wobble = self.bob * math.sin(2.0 * math.pi * 1.7 * (tp - self.t0))
        y = round((self.y + wobble) * height - oh / 2)
        return (x, y, ow, oh)


class Scene:
    """Renders frames of a :class:`SceneSpec`; ``frame(i)`` is a pure function of ``i``.

    >>> scene = Scene(SceneSpec(width=320, height=180))
    >>> scene.frame(0).shape
    (180, 320, 3)
    """

    def __init__(self, spec: SceneSpec) -> None:
        self.spec = spec
        self._background = _background(spec)
        self._phases = max(1, math.ceil(spec.loop_seconds / spec.period))
        self._movers = [_movers(spec, k) for k in range(self._phases)]
        rng = np.random.default_rng([spec.seed, 7919])
        # Signed noise split into two saturating uint8 planes: add then subtract is
        # 2-3x faster than one mixed-type add at 1080p.
        self._noise: tuple[Frame, Frame] | None = None
        if spec.noise > 0:
            shape = (spec.height + _NOISE_PAD, spec.width + _NOISE_PAD, 3)
            noise = np.round(rng.normal(0.0, spec.noise, shape))
            self._noise = (
                np.clip(noise, 0, 255).astype(np.uint8),
                np.clip(-noise, 0, 255).astype(np.uint8),
            )

    def time_of(self, index: int) -> float:
        """Loop-relative scene time of frame ``index``."""
        return (index % self.spec.frame_count) / self.spec.fps

    def frame(self, index: int) -> Frame:
        """The BGR frame number ``index`` (wraps around every loop)."""
        spec = self.spec
        index %= spec.frame_count
        t = index / spec.fps
        img = self._background.copy()
        k = int(t // spec.period) % self._phases
        tp = t - k * spec.period
        if tp < spec.active_seconds:
            for mover in self._movers[k]:
                box = mover.box(tp, spec.width, spec.height)
                if box is not None:
                    _draw(img, mover, box)
        g = spec.gain(t)
        if abs(g - 1.0) > 1e-6:
            img = np.asarray(cv2.convertScaleAbs(img, alpha=g), dtype=np.uint8)
        if self._noise is not None:
            # A different window of one noise tile per frame: cheap, and seeded by index.
            ox = (index * 7) % _NOISE_PAD
            oy = (index * 13) % _NOISE_PAD
            plus, minus = (n[oy : oy + spec.height, ox : ox + spec.width] for n in self._noise)
            img = np.asarray(cv2.subtract(cv2.add(img, plus), minus), dtype=np.uint8)
        return np.ascontiguousarray(img, dtype=np.uint8)


def _rgb(rng: np.random.Generator, lo: int, hi: int) -> tuple[int, int, int]:
    b, g, r = (int(v) for v in rng.integers(lo, hi, 3))
    return (b, g, r)


def _background(spec: SceneSpec) -> Frame:
    """A street-ish layout: sky, buildings with windows, pavement, road with lane marks."""
    w, h = spec.width, spec.height
    rng = np.random.default_rng([spec.seed, 1])
    img = np.zeros((h, w, 3), np.uint8)
    horizon = int(h * rng.uniform(0.38, 0.48))
    sky_top = np.array(_rgb(rng, 150, 230), np.float32)
    sky_bottom = np.array(_rgb(rng, 180, 250), np.float32)
    ramp = np.linspace(0.0, 1.0, horizon, dtype=np.float32)[:, None]
    img[:horizon] = (sky_top * (1 - ramp) + sky_bottom * ramp)[:, None, :].astype(np.uint8)
    # Buildings along the horizon.
    x = 0
    while x < w:
        bw = int(w * rng.uniform(0.08, 0.2))
        top = int(horizon * rng.uniform(0.1, 0.7))
        color = _rgb(rng, 60, 190)
        cv2.rectangle(img, (x, top), (x + bw, horizon), color, -1)
        step = max(6, int(h * 0.05))
        for wy in range(top + step // 2, horizon - step // 2, step):
            for wx in range(x + step // 3, x + bw - step // 2, step):
                lit = rng.random() < 0.4
                win = (90, 200, 230) if lit else (50, 50, 60)
                cv2.rectangle(img, (wx, wy), (wx + step // 3, wy + step // 2), win, -1)
        x += bw + int(w * rng.uniform(0.0, 0.03))
    # Pavement, kerb, road and lane marks.
    pave_end = horizon + int((h - horizon) * 0.3)
    img[horizon:pave_end] = _rgb(rng, 140, 180)
    img[pave_end : pave_end + max(2, h // 90)] = (200, 200, 200)
    img[pave_end + max(2, h // 90) :] = _rgb(rng, 70, 100)
    lane_y = pave_end + int((h - pave_end) * 0.55)
    dash = max(8, w // 24)
    for lx in range(0, w, dash * 2):
        cv2.rectangle(
            img, (lx, lane_y), (lx + dash, lane_y + max(2, h // 120)), (220, 220, 220), -1
        )
    # A few poles and a tree: static structure with edges the detector must ignore.
    for _ in range(int(rng.integers(2, 4))):
        px = int(w * rng.uniform(0.05, 0.95))
        cv2.rectangle(
            img, (px, int(horizon * 0.6)), (px + max(2, w // 200), pave_end), (40, 40, 40), -1
        )
    tx, ty = int(w * rng.uniform(0.1, 0.9)), int(horizon * rng.uniform(0.7, 1.0))
    for _ in range(6):
        r = int(h * rng.uniform(0.04, 0.08))
        off = (int(rng.integers(-r, r + 1)), int(rng.integers(-r, r + 1)))
        cv2.circle(img, (tx + off[0], ty + off[1]), r, _rgb(rng, 30, 110), -1)
    # Low-frequency shading and fine static grain, so flat areas have texture.
    small = rng.normal(1.0, 0.08, (max(2, h // 24), max(2, w // 24))).astype(np.float32)
    shade = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    grain = rng.normal(0.0, 4.0, (h, w)).astype(np.float32)
    out = img.astype(np.float32) * np.asarray(shade, np.float32)[:, :, None] + grain[:, :, None]
    textured: Frame = np.clip(out, 0, 255).astype(np.uint8)
    return textured


def _movers(spec: SceneSpec, phase: int) -> list[_Mover]:
    """The objects of active phase ``phase``; the first one spans the whole window."""
    rng = np.random.default_rng([spec.seed, 2, phase])
    active = spec.active_seconds
    kinds: tuple[Kind, ...] = ("car", "person", "bird")
    movers = []
    for j in range(spec.objects):
        kind = kinds[j % 3] if j < 3 else kinds[int(rng.integers(0, 3))]
        if j == 0:
            t0, t1 = 0.0, active
        else:
            d = active * rng.uniform(0.35, 1.0)
            t0 = rng.uniform(0.0, active - d)
            t1 = t0 + d
        direction = 1 if rng.random() < 0.5 else -1
        if kind == "car":
            mover = _Mover(
                kind,
                t0,
                t1,
                direction,
                rng.uniform(0.72, 0.85),
                rng.uniform(0.12, 0.22),
                rng.uniform(1.8, 2.6),
                _rgb(rng, 20, 230),
                0.0,
            )
        elif kind == "person":
            mover = _Mover(
                kind,
                t0,
                t1,
                direction,
                rng.uniform(0.5, 0.6),
                rng.uniform(0.15, 0.3),
                rng.uniform(0.3, 0.45),
                _rgb(rng, 20, 200),
                0.004,
            )
        else:
            mover = _Mover(
                kind,
                t0,
                t1,
                direction,
                rng.uniform(0.1, 0.35),
                rng.uniform(0.03, 0.06),
                rng.uniform(1.2, 1.8),
                _rgb(rng, 10, 90),
                0.03,
            )
        movers.append(mover)
    return movers


def _draw(img: Frame, m: _Mover, box: tuple[int, int, int, int]) -> None:
    x, y, w, h = box
    dark = tuple(int(c * 0.5) for c in m.color)
    if m.kind == "car":
        body_top = y + h // 3
        cv2.rectangle(img, (x, body_top), (x + w, y + h - h // 6), m.color, -1)
        cv2.rectangle(img, (x + w // 5, y), (x + w - w // 5, body_top), m.color, -1)
        cv2.rectangle(img, (x + w // 4, y + h // 12), (x + w - w // 4, body_top), (70, 60, 50), -1)
        r = max(2, h // 6)
        for cx in (x + w // 5, x + w - w // 5):
            cv2.circle(img, (cx, y + h - r), r, (20, 20, 20), -1)
            cv2.circle(img, (cx, y + h - r), max(1, r // 2), (150, 150, 150), -1)
    elif m.kind == "person":
        head = max(2, w // 2)
        cv2.circle(img, (x + w // 2, y + head), head, (120, 150, 200), -1)
        cv2.rectangle(img, (x, y + 2 * head), (x + w, y + int(h * 0.62)), m.color, -1)
        cv2.rectangle(img, (x + w // 8, y + int(h * 0.62)), (x + w - w // 8, y + h), dark, -1)
    else:
        cv2.ellipse(
            img, (x + w // 2, y + h // 2), (max(1, w // 2), max(1, h // 3)), 0, 0, 360, m.color, -1
        )
        cv2.line(img, (x, y), (x + w, y + h // 2), dark, max(1, h // 6))
