"""The pieces under the reader: luma views, JPEG checks, the rate limit and the backoff."""

from __future__ import annotations

import av
import cv2
import numpy as np
import pytest

from server.cameras import BadFrame
from server.cameras.frame import Frame, luma_view
from server.cameras.jpeg import decode_gray, jpeg_size, reduction_flag
from server.cameras.pump import RateLimit

W, H = 70, 30  # odd sizes make the decoder pad its rows


def _pattern() -> np.ndarray:
    rows = np.arange(H, dtype=np.uint16)[:, None]
    cols = np.arange(W, dtype=np.uint16)[None, :]
    return ((rows * 7 + cols * 3) % 251).astype(np.uint8)


@pytest.mark.parametrize("fmt", ["yuv420p", "yuvj420p", "nv12", "yuv422p", "gray"])
def test_luma_view_of_planar_formats_is_the_y_plane_without_copying(fmt: str) -> None:
    frame = av.VideoFrame(W + 2, H, fmt)  # even width for the chroma formats
    y = np.zeros((H, W + 2), np.uint8)
    y[:, :W] = _pattern()
    plane = frame.planes[0]
    padded = np.full((H, plane.line_size), 0xEE, np.uint8)
    padded[:, : W + 2] = y
    plane.update(padded.tobytes())
    luma = luma_view(frame)
    assert luma.shape == (H, W + 2)
    assert np.array_equal(luma, y)
    assert not luma.flags.owndata  # a view onto the frame's buffer
    assert not luma.flags.writeable  # and nobody may scribble on it


@pytest.mark.parametrize(("fmt", "offset"), [("yuyv422", 0), ("uyvy422", 1)])
def test_luma_view_of_packed_422_takes_every_other_byte(fmt: str, offset: int) -> None:
    width = W + 2
    frame = av.VideoFrame(width, H, fmt)
    plane = frame.planes[0]
    packed = np.full((H, plane.line_size), 0x80, np.uint8)
    y = np.zeros((H, width), np.uint8)
    y[:, :W] = _pattern()
    packed[:, offset : offset + 2 * width : 2] = y
    plane.update(packed.tobytes())
    luma = luma_view(frame)
    assert np.array_equal(luma, y)
    assert not luma.flags.owndata


def test_luma_of_other_formats_is_converted() -> None:
    bgr = np.zeros((H, W + 2, 3), np.uint8)
    bgr[:, :, 1] = 200  # green
    luma = luma_view(av.VideoFrame.from_ndarray(bgr, format="bgr24"))
    assert luma.shape == (H, W + 2)
    assert 100 < int(luma.mean()) < 200


def _jpeg(width: int, height: int, progressive: bool = False) -> bytes:
    image = np.random.default_rng(1).integers(0, 255, (height, width, 3), dtype=np.uint8)
    params = [cv2.IMWRITE_JPEG_PROGRESSIVE, 1] if progressive else []
    ok, data = cv2.imencode(".jpg", image, params)
    assert ok
    return data.tobytes()


@pytest.mark.parametrize("progressive", [False, True])
def test_jpeg_size_reads_the_frame_header(progressive: bool) -> None:
    assert jpeg_size(_jpeg(1280, 720, progressive)) == (1280, 720)
    assert jpeg_size(_jpeg(33, 17, progressive) + b"\r\n") == (33, 17)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty image (0 bytes)"),
        (b"<html>busy</html>", "not a JPEG image (garbage data)"),
        (_jpeg(64, 48)[:-300], "truncated JPEG image"),
        (b"\xff\xd8\xff\xd9", "corrupt JPEG image (no size header)"),
    ],
)
def test_jpeg_size_refuses_what_is_not_a_whole_jpeg(data: bytes, reason: str) -> None:
    with pytest.raises(BadFrame) as info:
        jpeg_size(data)
    assert info.value.reason == reason


def test_jpeg_size_refuses_a_header_claiming_a_huge_image() -> None:
    # A real 64x48 JPEG whose size header claims 30000x30000: decoded in colour (snapshot,
    # live view) it would take 2.7 GB.
    data = bytearray(_jpeg(64, 48))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = (30000).to_bytes(2, "big") * 2
    with pytest.raises(BadFrame) as info:
        jpeg_size(bytes(data))
    assert info.value.reason == "JPEG image too large (30000x30000, over 50 megapixels)"
    assert jpeg_size(_jpeg(7680, 4320)) == (7680, 4320)  # 8K


@pytest.mark.parametrize(
    ("width", "detect_width", "factor"),
    [
        (1920, 320, 4),
        (1280, 320, 4),
        (640, 320, 2),
        (2560, 320, 8),
        (639, 320, 2),
        (637, 320, 1),
        (320, 640, 1),
    ],
)
def test_reduction_keeps_at_least_the_detect_width(
    width: int, detect_width: int, factor: int
) -> None:
    assert reduction_flag(width, detect_width)[0] == factor
    gray = decode_gray(_jpeg(width, 48), width, detect_width)
    assert gray.shape[1] == -(-width // factor)
    assert gray.shape[1] >= min(width, detect_width)


def test_frame_to_bgr_from_jpeg_is_full_size() -> None:
    data = _jpeg(160, 90)
    frame = Frame(1, decode_gray(data, 160, 80), 0.0, 0.0, 160, 90, data)
    assert frame.luma.shape == (45, 80)
    assert frame.to_bgr().shape == (90, 160, 3)


def test_rate_limit_averages_the_target_from_any_source_rate() -> None:
    for source_fps, limit, expected in [(15, 10, 10), (30, 10, 10), (10, 10, 10), (5, 10, 5)]:
        rate = RateLimit(limit)
        times = [i / source_fps + 0.004 * ((i * 7) % 3 - 1) for i in range(source_fps * 20)]
        passed = sum(rate.due(t) for t in times)
        assert abs(passed / 20 - expected) <= 0.2, (source_fps, limit, passed)


def test_rate_limit_does_not_burst_after_a_gap() -> None:
    rate = RateLimit(10)
    assert rate.due(0.0)
    assert rate.due(100.0)  # first frame after a long outage
    assert not rate.due(100.01)  # and not a burst of catching up


def test_rate_limit_lets_the_frames_behind_a_late_one_through() -> None:
    # A 10 fps camera at a 10 fps limit; frame 5 comes 1.5 intervals late and frame 6
    # right behind it (decoded in a burst): neither is lost, and the schedule holds.
    times = [i / 10 for i in range(5)] + [0.65, 0.66] + [i / 10 for i in range(7, 30)]
    rate = RateLimit(10)
    assert all(rate.due(t) for t in times)
    assert not rate.due(2.91)  # but never more than the limit on average


def test_rate_limit_follows_a_live_change_of_fps() -> None:
    rate = RateLimit(10)
    times = [i / 30 for i in range(30 * 10)]  # a 30 fps camera for 10 s
    assert sum(rate.due(t) for t in times) in range(99, 102)
    rate.set_fps(5)
    assert sum(rate.due(10 + t) for t in times) in range(49, 52)
    rate.set_fps(30)
    assert sum(rate.due(20 + t) for t in times) in range(299, 301)
    rate.set_fps(None)  # no limit: every frame
    assert all(rate.due(30 + t / 2) for t in times)


def test_a_faster_rate_applies_to_the_next_frame() -> None:
    rate = RateLimit(1)
    assert rate.due(0.0)
    assert not rate.due(0.2)
    rate.set_fps(5)
    assert rate.due(0.2)  # one new interval after the last frame used, not the old one


def test_rate_changes_between_frames_apply_the_newest() -> None:
    # Set from the event loop, taken up by the reader at its next frame: two changes in
    # between act as the last one alone, measured from the last frame used.
    rate = RateLimit(1)
    assert rate.due(0.0)
    rate.set_fps(2)
    rate.set_fps(4)
    assert rate.interval == 0.25  # what was asked, at once
    assert not rate.due(0.18)
    assert rate.due(0.2)
    assert not rate.due(0.3)
    assert rate.due(0.45)
