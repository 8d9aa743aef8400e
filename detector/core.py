"""The motion detector: downscale, compare with an adaptive background, filter, report."""

from __future__ import annotations

from typing import cast

import cv2
import numpy as np
import numpy.typing as npt

from detector.config import DetectorConfig
from detector.geometry import Scaler, fill_polygons, working_scaler
from detector.result import Box, MotionResult, ZoneResult

__all__ = ["MotionDetector"]

Mask = npt.NDArray[np.uint8]
Image = npt.NDArray[np.float32]


class MotionDetector:
    """Finds moving objects in a stream of luma frames of one fixed shape."""

    def __init__(self, frame_shape: tuple[int, int], config: DetectorConfig | None = None) -> None:
        self._frame_shape = (int(frame_shape[0]), int(frame_shape[1]))
        self._config = config if config is not None else DetectorConfig()
        self._apply_config(self._config, keep_background=False)

    @property
    def config(self) -> DetectorConfig:
        """The configuration in use."""
        return self._config

    @property
    def frame_shape(self) -> tuple[int, int]:
        """The input frame shape (h, w) this detector expects."""
        return self._frame_shape

    def update_config(self, config: DetectorConfig) -> None:
        """Switch to ``config`` live, keeping the learned background unless the working size
        changes."""
        old = self._config
        self._config = config
        keep = (old.max_width, old.max_height) == (config.max_width, config.max_height)
        self._apply_config(config, keep_background=keep)

    def reset(self) -> None:
        """Forget the learned background and start warming up again."""
        self._bg: Image | None = None
        self._frames = 0

    def _apply_config(self, config: DetectorConfig, *, keep_background: bool) -> None:
        self._scaler: Scaler = working_scaler(
            self._frame_shape, config.max_width, config.max_height
        )
        shape = self._scaler.work_shape
        masked = fill_polygons(shape, config.masks)
        self._valid = cast(Mask, cv2.bitwise_not(masked))
        self._valid_count = max(1, cv2.countNonZero(self._valid))
        self._zones = [(z.name, fill_polygons(shape, [z.points])) for z in config.zones]
        self._min_area_px = config.min_area * shape[0] * shape[1]
        if not keep_background:
            self.reset()

    def detect(self, luma: npt.NDArray[np.uint8], timestamp: float | None = None) -> MotionResult:
        """Analyse one frame; ``timestamp`` is monotonic seconds (optional)."""
        if luma.ndim != 2 or luma.shape != self._frame_shape:
            raise ValueError(f"expected a 2-D frame of shape {self._frame_shape}, got {luma.shape}")
        if luma.dtype != np.uint8:
            raise ValueError(f"expected uint8 luma, got {luma.dtype}")
        g = cv2.GaussianBlur(self._scaler.shrink(luma), (3, 3), 0)
        cfg = self._config
        if self._bg is None:
            self._bg = g.astype(np.float32)
            self._frames = 1
            return self._empty(warming=True)
        self._frames += 1
        bg_u8 = cv2.convertScaleAbs(self._bg)
        diff = cv2.absdiff(g, bg_u8)
        thr = cfg.threshold if cfg.threshold > 0 else 15
        _, fg = cv2.threshold(diff, thr, 255, cv2.THRESH_BINARY)
        fg = cv2.bitwise_and(fg, self._valid)
        fg = cv2.medianBlur(fg, 3)
        alpha = max(1.0 / self._frames, 1.0 / (cfg.background_seconds * cfg.nominal_fps))
        cv2.accumulateWeighted(g, self._bg, alpha, mask=cv2.bitwise_not(fg))
        boxes, fg = self._blobs(cast(Mask, fg))
        warming = self._frames <= cfg.warmup_frames
        score = cv2.countNonZero(fg) / self._valid_count
        zres = {
            name: ZoneResult(name, bool(n > 0) and not warming, n / max(1, cv2.countNonZero(zm)))
            for name, zm in self._zones
            for n in [cv2.countNonZero(cv2.bitwise_and(fg, zm))]
        }
        return MotionResult(
            motion=bool(boxes) and not warming,
            boxes=boxes,
            mask=fg,
            score=score,
            zones={k: v.motion for k, v in zres.items()},
            warming_up=warming,
            zone_results=zres,
        )

    def _blobs(self, fg: Mask) -> tuple[list[Box], Mask]:
        contours, _ = cv2.findContours(fg, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        boxes: list[Box] = []
        small = []
        for c in contours:
            x, y, w, h = cv2.boundingRect(c)
            if max(cv2.contourArea(c), w * h * 0.5) >= self._min_area_px:
                boxes.append(self._scaler.to_input_box(x, y, w, h))
            else:
                small.append(c)
        if small:
            fg = fg.copy()
            cv2.drawContours(fg, small, -1, 0, -1)
        return boxes, fg

    def _empty(self, *, warming: bool) -> MotionResult:
        shape = self._scaler.work_shape
        zres = {name: ZoneResult(name, False, 0.0) for name, _ in self._zones}
        return MotionResult(
            motion=False,
            boxes=[],
            mask=np.zeros(shape, np.uint8),
            score=0.0,
            zones={k: False for k in zres},
            warming_up=warming,
            zone_results=zres,
        )
