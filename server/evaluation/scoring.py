"""CDnet scoring: pixel-level P/R/F and frame-level (alarm) P/R/F1, exactly as the datasets
README defines them.

Label values: 255 moving object (positive); 0 static and 50 hard shadow (negative); 85 outside the
region of interest and 170 unknown boundary (ignored). Only pixels inside ``ROI.bmp`` count. A frame
is positive when at least 0.2 % of its scored pixels are 255, negative when none are, and
unscored in between.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import cv2
import numpy as np
import numpy.typing as npt

__all__ = ["FRAME_POSITIVE_FRACTION", "Score", "frame_label", "prf"]

POSITIVE = 255
IGNORED = (85, 170)
FRAME_POSITIVE_FRACTION = 0.002


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    """Precision, recall and F-measure; 0 where undefined (no predictions / no positives)."""
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def frame_label(positive: int, scored: int) -> bool | None:
    """True (positive frame), False (negative) or None (too little motion to score either way)."""
    if scored == 0:
        return None
    if positive == 0:
        return False
    if positive >= FRAME_POSITIVE_FRACTION * scored:
        return True
    return None


@dataclass(slots=True)
class Score:
    """Running counts for one method on one sequence."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    frame_tp: int = 0
    frame_fp: int = 0
    frame_fn: int = 0
    frame_tn: int = 0
    still_frames: int = 0
    still_alarms: int = 0
    scored_frames: int = 0
    frames: int = 0
    seconds: float = 0.0

    def add(
        self,
        truth: npt.NDArray[np.uint8],
        roi: npt.NDArray[np.bool_],
        mask: npt.NDArray[np.uint8],
        alarm: bool,
        *,
        still: bool = False,
    ) -> None:
        """Score one frame: ``mask`` (foreground > 0, any scale) and ``alarm`` against ``truth``."""
        h, w = truth.shape
        if mask.shape != truth.shape:
            # A smaller mask is upsampled bilinearly and cut at half, which follows object
            # outlines better than repeating pixels.
            binary = np.where(mask > 0, 255, 0).astype(np.uint8)
            up = cv2.resize(binary, (w, h), interpolation=cv2.INTER_LINEAR)
            pred = cast(npt.NDArray[np.uint8], up) >= 128
        else:
            pred = mask > 0
        scored = roi & (truth != IGNORED[0]) & (truth != IGNORED[1])
        pos = scored & (truth == POSITIVE)
        neg = scored & ~pos
        n_pos = int(np.count_nonzero(pos))
        self.tp += int(np.count_nonzero(pred & pos))
        self.fn += n_pos - int(np.count_nonzero(pred & pos))
        self.fp += int(np.count_nonzero(pred & neg))
        self.scored_frames += 1
        label = frame_label(n_pos, int(np.count_nonzero(scored)))
        if label is True:
            if alarm:
                self.frame_tp += 1
            else:
                self.frame_fn += 1
        elif label is False:
            if alarm:
                self.frame_fp += 1
            else:
                self.frame_tn += 1
            if still:
                self.still_frames += 1
                self.still_alarms += int(alarm)

    def merge(self, other: Score) -> None:
        """Add ``other``'s counts into this one."""
        for name in self.__slots__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def pixel(self) -> tuple[float, float, float]:
        """Pixel precision, recall, F."""
        return prf(self.tp, self.fp, self.fn)

    @property
    def frame(self) -> tuple[float, float, float]:
        """Frame (alarm) precision, recall, F1."""
        return prf(self.frame_tp, self.frame_fp, self.frame_fn)

    @property
    def negatives(self) -> int:
        """Scored negative frames."""
        return self.frame_fp + self.frame_tn

    @property
    def false_alarms(self) -> int:
        """Alarms on negative frames."""
        return self.frame_fp

    @property
    def ms_per_frame(self) -> float:
        """Mean detector time per frame, milliseconds."""
        return 1000.0 * self.seconds / self.frames if self.frames else 0.0
