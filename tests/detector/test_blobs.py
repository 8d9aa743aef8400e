"""The blob steps on their own: faint blobs over a moving background are dropped, objects kept."""

from __future__ import annotations

import cv2
import numpy as np

from detector.blobs import Blob, drop_faint, find_blobs

SHAPE = (60, 80)


def _blobs(fg: np.ndarray) -> list[Blob]:
    return find_blobs(fg, (slice(0, SHAPE[0]), slice(0, SHAPE[1])), 4.0)


def _scene(change: int, noise_level: int) -> tuple[np.ndarray, ...]:
    """A flat background (level 100, envelope 100..100, threshold 8) with one 10 x 10 blob whose
    pixels are ``change`` levels brighter, over a noise level of ``noise_level``."""
    frame = np.full(SHAPE, 100, np.uint8)
    frame[20:30, 30:40] = 100 + change
    fg = np.zeros(SHAPE, np.uint8)
    fg[20:30, 30:40] = 255
    hi = np.full(SHAPE, 100, np.uint8)
    lo = np.full(SHAPE, 100, np.uint8)
    thr = np.full(SHAPE, 8, np.uint8)
    noise = np.full(SHAPE, noise_level, np.uint8)
    return frame, fg, hi, lo, thr, noise


def test_faint_blob_over_a_moving_background_is_dropped() -> None:
    frame, fg, hi, lo, thr, noise = _scene(change=12, noise_level=3)
    blobs = _blobs(fg)
    assert len(blobs) == 1
    kept, held = drop_faint(blobs, fg, frame, (hi, lo), thr=thr, noise=noise)
    assert kept == []
    assert held == []  # no strong pixel at all: texture, learned into the background
    assert cv2.countNonZero(fg) == 0


def test_blob_with_a_strong_core_over_a_moving_background_is_kept() -> None:
    frame, fg, hi, lo, thr, noise = _scene(change=12, noise_level=3)
    frame[22:28, 32:38] = 140  # 36 pixels 40 levels out: beyond three times the threshold
    blobs = _blobs(fg)
    kept, held = drop_faint(blobs, fg, frame, (hi, lo), thr=thr, noise=noise)
    assert len(kept) == 1
    assert held == []
    assert cv2.countNonZero(fg) == 100


def test_blob_with_a_thin_core_over_a_moving_background_is_held() -> None:
    frame, fg, hi, lo, thr, noise = _scene(change=12, noise_level=3)
    frame[24:26, 34:36] = 140  # four strong pixels: under a fifth of the blob
    blobs = _blobs(fg)
    kept, held = drop_faint(blobs, fg, frame, (hi, lo), thr=thr, noise=noise)
    assert kept == []
    assert len(held) == 1  # left out of the mask, but not to be learned
    assert cv2.countNonZero(fg) == 0


def test_blob_with_a_thin_core_reported_on_the_previous_frame_is_kept() -> None:
    frame, fg, hi, lo, thr, noise = _scene(change=12, noise_level=3)
    frame[24:26, 34:36] = 140
    reported = np.zeros(SHAPE, np.uint8)
    reported[19:30, 30:41] = 255  # the object, one pixel further up and right a frame ago
    blobs = _blobs(fg)
    kept, held = drop_faint(blobs, fg, frame, (hi, lo), thr=thr, noise=noise, reported=reported)
    assert len(kept) == 1
    assert held == []
    assert cv2.countNonZero(fg) == 100


def test_faint_blob_over_a_quiet_background_is_kept() -> None:
    frame, fg, hi, lo, thr, noise = _scene(change=12, noise_level=0)
    blobs = _blobs(fg)
    kept, _ = drop_faint(blobs, fg, frame, (hi, lo), thr=thr, noise=noise)
    assert len(kept) == 1
    assert cv2.countNonZero(fg) == 100
