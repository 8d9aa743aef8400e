"""Synthetic scenes for detector tests: a textured static background, sensor noise, JPEG
compression, lighting changes and moving rectangles."""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np
import numpy.typing as npt

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]


def background(h: int = 360, w: int = 640, seed: int = 1) -> F32:
    """A street-like still scene: gradients, blocks of texture and fine grain."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = 70.0 + 60.0 * yy / h + 15.0 * np.sin(xx / 23.0)
    for _ in range(30):
        x, y = int(rng.integers(0, w - 40)), int(rng.integers(0, h - 40))
        bw, bh = int(rng.integers(10, w // 4)), int(rng.integers(10, h // 4))
        img[y : y + bh, x : x + bw] += float(rng.normal(0.0, 25.0))
    grain = cv2.GaussianBlur(rng.normal(0.0, 12.0, (h, w)).astype(np.float32), (0, 0), 1.5)
    return np.clip(img + grain, 5, 250).astype(np.float32)


def camera(
    scene: F32, rng: np.random.Generator, sigma: float = 2.5, quality: int | None = 75
) -> U8:
    """What a camera delivers for ``scene``: sensor noise, then JPEG compression."""
    noisy = scene + rng.normal(0.0, sigma, scene.shape).astype(np.float32)
    frame = np.clip(noisy, 0, 255).astype(np.uint8)
    if quality is None:
        return frame
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)


def with_box(scene: F32, box: tuple[int, int, int, int], level: float) -> F32:
    """``scene`` with a solid, lightly textured object filling ``box`` (x1, y1, x2, y2)."""
    out = scene.copy()
    x1, y1, x2, y2 = box
    yy, xx = np.mgrid[y1:y2, x1:x2].astype(np.float32)
    out[y1:y2, x1:x2] = level + 6.0 * np.sin(xx / 3.0) * np.cos(yy / 4.0)
    return out


def tone(scene: F32, gain: float = 1.0, offset: float = 0.0, gamma: float = 1.0) -> F32:
    """Global lighting: a tone curve ``255 * (x / 255) ** gamma * gain + offset``."""
    curved = 255.0 * np.power(np.clip(scene, 0, 255) / 255.0, gamma)
    return np.clip(curved * gain + offset, 0, 255).astype(np.float32)


def still_frames(scene: F32, n: int, rng: np.random.Generator, sigma: float = 2.5) -> Iterator[U8]:
    """``n`` camera frames of an unchanging ``scene``."""
    for _ in range(n):
        yield camera(scene, rng, sigma)
