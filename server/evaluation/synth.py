"""Generated still periods with lighting distractors, built from real footage.

A still period shows the scene's empty background (the temporal median of the real frames) as a
camera would: sensor noise, JPEG compression, slow gain drift (clouds), a sudden light switch with
uneven spread, a day-to-IR tone-curve flip and back, and auto-exposure steps. Nothing moves, so
every alarm in it is false. The real frames follow, so the same run also shows how quickly the
detector re-adapts and finds real objects afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import cast

import cv2
import numpy as np
import numpy.typing as npt

from server.evaluation.dataset import DiskSequence, EvalFrame, read_luma

__all__ = ["Lighting", "StillSequence", "median_background", "render_still", "schedule"]

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]
JPEG_QUALITY = 70


@dataclass(frozen=True, slots=True)
class Lighting:
    """The photometric state of one still frame."""

    gain: float = 1.0
    lamp: float = 0.0
    """Extra gain from a lamp on one side: gain rises by up to this much from left to right."""
    offset: float = 0.0
    ir: bool = False
    """Day-to-IR flip: a flatter, brighter tone curve and stronger noise."""


def schedule(i: int, n: int) -> Lighting:
    """The distractor state of still frame ``i`` of ``n``.

    Phases (fractions of the period): a clean start, then a light switch on at 20 % and off at
    38 %, an IR flip at 50 % and back at 68 %, auto-exposure steps (ramped over three frames) at
    78 % and 86 %, all on top of a slow sinusoidal gain drift of +-10 % over the whole period.
    """
    t = i / max(1, n)
    gain = 1.0 + 0.10 * float(np.sin(2.0 * np.pi * t))
    lamp = 0.0
    offset = 0.0
    ir = False
    if 0.20 <= t < 0.38:
        gain *= 1.35
        lamp = 0.30
        offset = 6.0
    if 0.50 <= t < 0.68:
        ir = True

    def ramp(start: float, factor: float) -> float:
        k = (i - start * n) / 3.0
        return 1.0 + (factor - 1.0) * float(np.clip(k, 0.0, 1.0))

    if 0.78 <= t < 0.93:
        gain *= ramp(0.78, 0.80) * ramp(0.86, 1.25)
    return Lighting(gain=gain, lamp=lamp, offset=offset, ir=ir)


def render_still(background: F32, light: Lighting, rng: np.random.Generator) -> U8:
    """Render one noisy, JPEG-compressed frame of ``background`` under ``light``."""
    h, w = background.shape
    x = background
    if light.ir:
        x = (255.0 * np.power(x / 255.0, 0.55) * 0.80 + 30.0).astype(np.float32)
    field_ = light.gain * (1.0 + light.lamp * np.linspace(0.0, 1.0, w, dtype=np.float32))
    x = (x * field_[None, :] + light.offset).astype(np.float32, copy=False)
    sigma = 2.0 * (1.8 if light.ir else 1.0)
    shot = np.sqrt(np.clip(x, 0.0, 255.0)) * 0.2
    noisy = x + rng.standard_normal((h, w), dtype=np.float32) * (sigma + shot)
    frame = np.clip(noisy, 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return cast(U8, cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE))


def median_background(seq: DiskSequence, samples: int = 49) -> F32:
    """The per-pixel temporal median of up to ``samples`` evenly spaced frames."""
    numbers = sorted(seq.inputs)
    picks = np.unique(np.linspace(0, len(numbers) - 1, min(samples, len(numbers))).astype(int))
    stack = np.stack([read_luma(seq.inputs[numbers[k]]) for k in picks])
    return cast(F32, np.median(stack, axis=0).astype(np.float32))


@dataclass
class StillSequence:
    """``still`` generated still frames of ``base``'s scene, then up to ``real`` of its scored
    frames (its warm-up frames are skipped: the still period is the warm-up)."""

    base: DiskSequence
    still: int = 150
    real: int = 150
    seed: int = 0
    _background: F32 | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        """``<base>+still``."""
        return f"{self.base.name}+still"

    @property
    def shape(self) -> tuple[int, int]:
        """The base sequence's frame shape."""
        return self.base.shape

    @property
    def roi(self) -> npt.NDArray[np.bool_]:
        """The base sequence's ROI."""
        return self.base.roi

    @property
    def synthetic(self) -> bool:
        """Always True."""
        return True

    def _real_numbers(self) -> list[int]:
        return [n for n in self.base.numbers() if self.base.scored(n)][: self.real]

    def __len__(self) -> int:
        return self.still + len(self._real_numbers())

    def frames(self, max_scored: int | None = None) -> Iterator[EvalFrame]:
        """All still frames (scored, negative), then the real frames; ``max_scored`` caps only
        the real part, so a shortened run still sees every distractor."""
        if self._background is None:
            self._background = median_background(self.base)
        rng = np.random.default_rng(self.seed)
        empty = np.zeros(self.shape, np.uint8)
        for i in range(self.still):
            luma = render_still(self._background, schedule(i, self.still), rng)
            yield EvalFrame(-self.still + i, luma, empty, still=True)
        for n in self._real_numbers()[:max_scored]:
            luma = read_luma(self.base.inputs[n])
            yield EvalFrame(n, luma, read_luma(self.base.truths[n]))
