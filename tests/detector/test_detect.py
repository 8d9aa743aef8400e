"""The detector on synthetic scenes: objects found where they are, nothing found where nothing
moves, whatever the noise and the light do."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from detector_harness import background, camera, still_frames, tone, with_box
from pydantic import ValidationError

from detector import DetectorConfig, DetectorTuning, MotionDetector, MotionResult, Zone

H, W = 360, 640
LEFT_HALF = ((0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0))
RIGHT_HALF = ((0.5, 0.0), (1.0, 0.0), (1.0, 1.0), (0.5, 1.0))


def warmed(det: MotionDetector, scene: np.ndarray, rng: np.random.Generator, n: int = 40) -> None:
    for frame in still_frames(scene, n, rng):
        r = det.detect(frame)
        assert not r.motion


def iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def test_moving_object_found_with_right_box_and_zone() -> None:
    rng = np.random.default_rng(0)
    scene = background(H, W)
    cfg = DetectorConfig(
        zones=(Zone(name="left", points=LEFT_HALF), Zone(name="right", points=RIGHT_HALF))
    )
    det = MotionDetector((H, W), cfg)
    warmed(det, scene, rng)
    results: list[MotionResult] = []
    for step in range(12):
        x = 60 + 12 * step
        box = (x, 150, x + 80, 250)
        r = det.detect(camera(with_box(scene, box, 220.0), rng))
        results.append(r)
        assert r.motion, f"step {step}: object not found"
        assert r.zones == {"left": True, "right": False}
        assert len(r.boxes) == 1, r.boxes
        assert iou(r.boxes[0], box) > 0.6, (r.boxes, box)
        assert 0.0 < r.score < 0.1
        assert r.zone_results["left"].score > 0.0
        assert r.zone_results["right"].score == 0.0
    mask = results[-1].mask
    assert mask.shape == MotionDetector((H, W), cfg).working_shape
    assert mask.shape[1] / mask.shape[0] == pytest.approx(W / H, rel=0.02)


def test_boxes_are_in_input_pixels_for_a_decimated_1080p_frame() -> None:
    rng = np.random.default_rng(1)
    scene = background(1080, 1920, seed=3)
    det = MotionDetector((1080, 1920))
    assert det.working_shape == (135, 240)
    warmed(det, scene, rng, n=20)
    box = (1200, 500, 1500, 800)
    r = det.detect(camera(with_box(scene, box, 20.0), rng))
    assert r.motion
    assert len(r.boxes) == 1
    assert iou(r.boxes[0], box) > 0.7, r.boxes


def test_noisy_still_scene_raises_no_alarm() -> None:
    rng = np.random.default_rng(2)
    scene = background(H, W, seed=5)
    det = MotionDetector((H, W))
    alarms = [det.detect(f).motion for f in still_frames(scene, 300, rng, sigma=4.0)]
    assert not any(alarms)


@pytest.mark.parametrize(
    ("name", "gain", "offset", "gamma"),
    [
        ("light-on", 1.6, 10.0, 1.0),
        ("light-off", 0.55, 0.0, 1.0),
        ("ir-flip", 0.85, 30.0, 0.55),
        ("exposure-step", 1.15, 0.0, 1.0),
    ],
)
def test_light_switch_and_ir_flip_raise_no_alarm(
    name: str, gain: float, offset: float, gamma: float
) -> None:
    rng = np.random.default_rng(3)
    day = background(H, W, seed=7)
    night = tone(day, gain, offset, gamma)
    det = MotionDetector((H, W))
    warmed(det, day, rng)
    changed = [det.detect(f) for f in still_frames(night, 30, rng)]
    assert not any(r.motion for r in changed), name
    assert changed[0].lighting_change
    back = [det.detect(f) for f in still_frames(day, 30, rng)]
    assert not any(r.motion for r in back), name


def test_object_entering_during_a_light_switch_is_found_soon() -> None:
    rng = np.random.default_rng(4)
    day = background(H, W, seed=8)
    night = tone(day, 0.6, 0.0)
    det = MotionDetector((H, W))
    warmed(det, day, rng)
    found_at = None
    for step in range(10):
        x = 100 + 15 * step
        r = det.detect(camera(with_box(night, (x, 120, x + 70, 220), 230.0), rng))
        if r.motion and found_at is None:
            found_at = step
    assert found_at is not None
    assert found_at <= 2


def test_mask_removes_its_area() -> None:
    rng = np.random.default_rng(5)
    scene = background(H, W)
    masked = MotionDetector((H, W), DetectorConfig(masks=(LEFT_HALF,)))
    plain = MotionDetector((H, W))
    for det in (masked, plain):
        warmed(det, scene, np.random.default_rng(6))
    for step in range(6):
        x = 40 + 10 * step
        frame = camera(with_box(scene, (x, 100, x + 90, 200), 230.0), rng)
        assert plain.detect(frame).motion
        r = masked.detect(frame)
        assert not r.motion
        assert r.score == 0.0
        assert not r.mask.any()


def test_config_change_applies_live_and_keeps_the_background() -> None:
    rng = np.random.default_rng(7)
    scene = background(H, W)
    det = MotionDetector((H, W))
    warmed(det, scene, rng)
    box = (300, 100, 380, 200)
    assert det.detect(camera(with_box(scene, box, 230.0), rng)).motion
    det.update_config(DetectorConfig(masks=(RIGHT_HALF,)))
    assert det.config.masks == (RIGHT_HALF,)
    r = det.detect(camera(with_box(scene, (420, 100, 500, 200), 230.0), rng))
    assert not r.motion, "the new mask is not applied"
    assert not r.warming_up, "the background was dropped"
    r = det.detect(camera(with_box(scene, (100, 100, 180, 200), 230.0), rng))
    assert r.motion, "motion outside the new mask is lost"
    det.update_config(DetectorConfig(min_area=0.2))
    r = det.detect(camera(with_box(scene, (120, 100, 200, 200), 230.0), rng))
    assert not r.motion, "the new minimum area is not applied"


def test_working_size_change_restarts_learning() -> None:
    rng = np.random.default_rng(8)
    scene = background(H, W)
    det = MotionDetector((H, W))
    warmed(det, scene, rng, n=5)
    det.update_config(DetectorConfig(max_width=160, max_height=90))
    assert det.working_shape == (90, 160)
    assert det.detect(camera(scene, rng)).warming_up


def test_reset_starts_over() -> None:
    rng = np.random.default_rng(9)
    scene = background(H, W)
    det = MotionDetector((H, W))
    warmed(det, scene, rng, n=5)
    det.reset()
    first = det.detect(camera(scene, rng))
    assert first.warming_up
    assert not first.motion
    assert not det.detect(camera(scene, rng)).warming_up


def test_warm_up_reports_nothing_not_even_mask_or_score() -> None:
    rng = np.random.default_rng(19)
    scene = background(H, W)
    cfg = DetectorConfig(warmup_frames=6, zones=(Zone(name="left", points=LEFT_HALF),))
    det = MotionDetector((H, W), cfg)
    for _ in range(3):
        det.detect(camera(scene, rng))
    seen = []
    for step in range(3):
        x = 60 + 12 * step
        r = det.detect(camera(with_box(scene, (x, 150, x + 80, 250), 220.0), rng))
        assert r.warming_up
        assert (r.motion, r.boxes, r.score) == (False, [], 0.0)
        assert r.zone_results["left"].score == 0.0
        seen.append(int(np.count_nonzero(r.mask)))
    assert seen == [0, 0, 0], "the mask must agree with motion while warming up"
    r = det.detect(camera(with_box(scene, (120, 150, 200, 250), 220.0), rng))
    assert not r.warming_up
    assert r.motion, "the same object is found once warmed up"
    assert r.score > 0.0


def test_parked_object_becomes_background_after_absorb_time() -> None:
    rng = np.random.default_rng(10)
    scene = background(H, W)
    det = MotionDetector((H, W), DetectorConfig(absorb_seconds=5.0))
    t = 0.0
    for frame in still_frames(scene, 40, rng):
        det.detect(frame, t)
        t += 0.1
    parked = with_box(scene, (200, 150, 320, 230), 30.0)
    states = []
    for frame in still_frames(parked, 120, rng):
        states.append(det.detect(frame, t).motion)
        t += 0.1
    assert all(states[:30]), "a parked car is motion at first"
    assert not any(states[-30:]), "a parked car stops being motion after absorb_seconds"


def test_ghost_of_an_object_present_at_start_fades() -> None:
    rng = np.random.default_rng(11)
    scene = background(H, W)
    start = with_box(scene, (100, 100, 200, 200), 230.0)
    det = MotionDetector((H, W))
    for frame in still_frames(start, 3, rng):
        det.detect(frame)
    late = [det.detect(f).motion for f in still_frames(scene, 40, rng)]
    assert not any(late[-20:]), "the revealed background stays in motion"


def test_small_camera_shift_raises_no_alarm() -> None:
    rng = np.random.default_rng(12)
    scene = background(H + 40, W + 40, seed=13)
    det = MotionDetector((H, W))
    for frame in still_frames(scene[20 : 20 + H, 20 : 20 + W], 40, rng):
        det.detect(frame)
    moved = scene[12 : 12 + H, 28 : 28 + W]
    results = [det.detect(f) for f in still_frames(moved, 10, rng)]
    assert not any(r.motion for r in results)


def test_accepts_a_strided_plane_view() -> None:
    rng = np.random.default_rng(13)
    scene = background(H, W)
    det = MotionDetector((H, W))
    padded = np.zeros((H, W + 64), np.uint8)
    for _ in range(20):
        padded[:, :W] = camera(scene, rng)
        assert not det.detect(padded[:, :W]).motion
    padded[:, :W] = camera(with_box(scene, (300, 100, 400, 200), 230.0), rng)
    assert det.detect(padded[:, :W]).motion


def test_rejects_wrong_shape_and_type() -> None:
    det = MotionDetector((H, W))
    with pytest.raises(ValueError, match="shape"):
        det.detect(np.zeros((H, W + 1), np.uint8))
    with pytest.raises(ValueError, match="shape"):
        det.detect(np.zeros((H, W, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        det.detect(np.zeros((H, W), np.float32))
    with pytest.raises(ValueError, match="small"):
        MotionDetector((4, 4))


def test_rejects_a_frame_that_is_not_an_array() -> None:
    det = MotionDetector((H, W))
    frame = np.zeros((H, W), np.uint8)
    with pytest.raises(TypeError, match="NumPy uint8 array, got list"):
        det.detect(frame.tolist())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="got memoryview"):
        det.detect(memoryview(frame))  # type: ignore[arg-type]
    assert det.detect(frame).warming_up, "a refused frame must not count"


@pytest.mark.parametrize("timestamp", [math.nan, math.inf, -math.inf])
def test_rejects_a_timestamp_that_is_not_finite(timestamp: float) -> None:
    det = MotionDetector((H, W))
    frame = np.zeros((H, W), np.uint8)
    with pytest.raises(ValueError, match=f"timestamp must be finite seconds, got {timestamp!r}"):
        det.detect(frame, timestamp)
    assert det.detect(frame, 1.0).warming_up, "a refused frame must not count"


def test_fixed_threshold_and_sensitivity_change_what_counts() -> None:
    rng = np.random.default_rng(14)
    flat = np.full((H, W), 100.0, np.float32)
    faint = flat.copy()
    yy, xx = np.mgrid[100:200, 200:300]
    # A faint object with texture of its own: 6..14 levels above the background.
    faint[100:200, 200:300] = 110.0 + 4.0 * np.where((yy // 9 + xx // 9) % 2 == 0, 1.0, -1.0)
    results = {}
    for name, cfg in {
        "strict": DetectorConfig(threshold=40),
        "loose": DetectorConfig(threshold=5),
        "insensitive": DetectorConfig(sensitivity=0),
        "sensitive": DetectorConfig(sensitivity=100),
    }.items():
        det = MotionDetector((H, W), cfg)
        for frame in still_frames(flat, 40, np.random.default_rng(15), sigma=1.0):
            assert not det.detect(frame).motion
        results[name] = det.detect(camera(faint, rng, sigma=1.0)).motion
    assert results == {"strict": False, "loose": True, "insensitive": False, "sensitive": True}


def test_zooming_camera_is_followed_and_the_object_still_found() -> None:
    rng = np.random.default_rng(5)
    wide = background(2 * H, 2 * W, seed=21)
    grain = cv2.GaussianBlur(rng.normal(0.0, 30.0, wide.shape).astype(np.float32), (0, 0), 4.0)
    scene = np.clip(wide + grain, 5, 250).astype(np.float32)
    det = MotionDetector((H, W))
    late: list[tuple[MotionResult, tuple[int, int, int, int]]] = []
    for t in range(40):
        # Still for two seconds, then zooming in by 1 % a frame about the centre.
        s = 1.0 + 0.01 * max(0, t - 20)
        view_to_frame = np.array([[s, 0.0, W / 2 - s * W], [0.0, s, H / 2 - s * H]], np.float32)
        view = cv2.warpAffine(scene, view_to_frame, (W, H), flags=cv2.INTER_LINEAR)
        box = (300, 150 + 2 * t, 360, 200 + 2 * t)
        r = det.detect(camera(with_box(view, box, 230.0), rng))
        if t >= 32:
            late.append((r, box))
    for r, box in late:
        assert r.motion
        assert any(iou(b, box) > 0.0 for b in r.boxes), (r.boxes, box)
        # The zoomed background is not reported: only the object's surroundings are in motion.
        mh, mw = r.mask.shape
        x1, y1, x2, y2 = box
        outside = r.mask.copy()
        outside[
            max(0, y1 * mh // H - 4) : y2 * mh // H + 4, max(0, x1 * mw // W - 4) : x2 * mw // W + 4
        ] = 0
        assert cv2.countNonZero(outside) < 0.005 * r.mask.size


def test_overlay_fixed_in_the_picture_is_not_motion_while_the_camera_pans() -> None:
    rng = np.random.default_rng(31)
    wide = background(H, 3 * W, seed=32)
    # A timestamp burnt into the picture: bright stroke-like bars on a dark band.
    overlay = (slice(16, 56), slice(24, 264))
    yy, xx = np.mgrid[overlay]
    text = np.where((xx // 6) % 3 == 0, 235.0, np.where((yy // 8) % 2 == 0, 40.0, 200.0))
    det = MotionDetector((H, W))
    for t in range(50):
        # Still for two seconds, then panning right by 2 pixels a frame.
        x0 = 2 * max(0, t - 20)
        view = wide[:, x0 : x0 + W].copy()
        view[overlay] = text
        r = det.detect(camera(view, rng))
        if t >= 40:
            # The overlay and its surroundings: at most a few flat bits of the band in motion
            # (the whole overlay, over a tenth of the band, when it is taken for motion).
            mh, mw = r.mask.shape
            band = r.mask[: 64 * mh // H, : 272 * mw // W]
            assert cv2.countNonZero(band) < 0.03 * band.size, (t, cv2.countNonZero(band))


def test_switching_stabilize_off_while_following_leaves_a_still_object_in_motion() -> None:
    rng = np.random.default_rng(33)
    wide = background(H, 3 * W, seed=34)
    det = MotionDetector((H, W))
    x0 = 0
    for t in range(36):
        # Still for two seconds, then panning right by 3 pixels a frame (followed from the
        # periodic camera check on).
        x0 = 3 * max(0, t - 20)
        r = det.detect(camera(wide[:, x0 : x0 + W].copy(), rng))
    assert not r.motion, "the pan is not followed"
    det.update_config(DetectorConfig(stabilize=False))
    scene = wide[:, x0 : x0 + W].copy()
    # The camera stops, and an object comes in and stands still: it must stay motion (the
    # steps for a moving camera, which drop what stays put in the picture, are off).
    box = (300, 100, 380, 200)
    for _ in range(6):
        r = det.detect(camera(with_box(scene, box, 230.0), rng))
    mh, mw = r.mask.shape
    inside = r.mask[box[1] * mh // H : box[3] * mh // H, box[0] * mw // W : box[2] * mw // W]
    assert r.motion
    assert cv2.countNonZero(inside) > 0.8 * inside.size


def test_object_around_a_mask_reports_nothing_inside_the_mask() -> None:
    rng = np.random.default_rng(30)
    scene = background(H, W)
    hole = ((0.4, 0.4), (0.6, 0.4), (0.6, 0.6), (0.4, 0.6))
    inside = ((0.45, 0.45), (0.55, 0.45), (0.55, 0.55), (0.45, 0.55))
    cfg = DetectorConfig(masks=(hole,), zones=(Zone(name="inside", points=inside),))
    det = MotionDetector((H, W), cfg)
    warmed(det, scene, rng)
    wh, ww = det.working_shape
    under_mask = (
        slice(round(0.42 * wh), round(0.58 * wh)),
        slice(round(0.42 * ww), round(0.58 * ww)),
    )
    for step in range(6):
        # An object bigger than the mask and covering it: its outline surrounds the mask.
        x = 180 + 4 * step
        r = det.detect(camera(with_box(scene, (x, 100, x + 280, 260), 230.0), rng))
        assert r.motion
        assert not r.mask[under_mask].any(), "motion reported under the mask"
        assert r.zones == {"inside": False}, r.zone_results
        assert r.zone_results["inside"].score == 0.0


@pytest.mark.parametrize("shape", [(8, 2000), (2000, 8), (16, 4000), (8, 480)])
def test_thin_strip_frames_are_analysed(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(31)
    h, w = shape
    scene = np.ascontiguousarray(background(max(h, 400), max(w, 400))[:h, :w])
    det = MotionDetector(shape)
    warmed(det, scene, rng, n=20)
    assert min(det.working_shape) >= 8
    # An object a tenth of the strip long, across its whole width.
    box = (w // 2, 0, w // 2 + w // 10, h) if h < w else (0, h // 2, w, h // 2 + h // 10)
    r = det.detect(camera(with_box(scene, box, 20.0), rng))
    assert r.motion
    assert r.boxes
    for x1, y1, x2, y2 in r.boxes:
        assert 0 <= x1 < x2 <= w
        assert 0 <= y1 < y2 <= h
        # Each box lies on the object (with a working pixel or two of slack).
        assert box[0] - w // 50 <= x1, (r.boxes, box)
        assert x2 <= box[2] + w // 50, (r.boxes, box)
        assert box[1] - h // 50 <= y1, (r.boxes, box)
        assert y2 <= box[3] + h // 50, (r.boxes, box)


def test_zone_score_is_over_its_unmasked_part() -> None:
    rng = np.random.default_rng(32)
    scene = background(H, W)
    zone = ((0.2, 0.3), (0.4, 0.3), (0.4, 0.7), (0.2, 0.7))
    left_of_zone = ((0.0, 0.0), (0.3, 0.0), (0.3, 1.0), (0.0, 1.0))
    cfg = DetectorConfig(zones=(Zone(name="door", points=zone),), masks=(left_of_zone,))
    det = MotionDetector((H, W), cfg)
    warmed(det, scene, rng)
    # An object over the whole zone, half of which is masked.
    r = det.detect(camera(with_box(scene, (0, 90, 270, 270), 20.0), rng))
    assert r.zones == {"door": True}
    assert r.zone_results["door"].score > 0.8, r.zone_results
    assert r.zone_results["door"].score <= 1.0


def test_nominal_fps_change_applies_live_without_timestamps() -> None:
    rng = np.random.default_rng(33)
    scene = background(H, W)
    det = MotionDetector((H, W), DetectorConfig(absorb_seconds=10.0, nominal_fps=10.0))
    warmed(det, scene, rng)
    # At 10 fps a parked object would stay motion for 100 frames; at 2 fps for 20.
    det.update_config(DetectorConfig(absorb_seconds=10.0, nominal_fps=2.0))
    parked = with_box(scene, (200, 150, 320, 230), 30.0)
    states = [det.detect(frame).motion for frame in still_frames(parked, 45, rng)]
    assert all(states[:10]), "a parked car is motion at first"
    assert not any(states[-10:]), "the parked car is not absorbed at the new frame rate"


def test_max_size_change_that_keeps_the_working_size_keeps_the_background() -> None:
    rng = np.random.default_rng(34)
    scene = background(180, 240)
    det = MotionDetector((180, 240))
    warmed(det, scene, rng)
    # The frame already fits both limits: the working grid stays the input's size.
    det.update_config(DetectorConfig(max_width=320, max_height=240))
    assert det.working_shape == (180, 240)
    r = det.detect(camera(with_box(scene, (60, 50, 120, 120), 230.0), rng))
    assert not r.warming_up, "the background was dropped"
    assert r.motion


@pytest.mark.parametrize("shape", [(H, W, 3), (H,), (120.5, 160), (True, W), "HW"])
def test_rejects_a_frame_shape_that_is_not_two_integers(shape: object) -> None:
    with pytest.raises(ValueError, match=r"frame_shape must be .*\(height, width\)"):
        MotionDetector(shape)  # type: ignore[arg-type]


def test_rejects_a_config_that_is_not_a_detector_config() -> None:
    with pytest.raises(TypeError, match="expected a DetectorConfig, got dict"):
        MotionDetector((H, W), {"sensitivity": 80})  # type: ignore[arg-type]
    det = MotionDetector((H, W), DetectorConfig(sensitivity=80))
    with pytest.raises(TypeError, match="expected a DetectorConfig, got DetectorTuning"):
        det.update_config(DetectorTuning())  # type: ignore[arg-type]
    assert det.config == DetectorConfig(sensitivity=80), "a refused config must not be kept"


@pytest.mark.parametrize(
    ("field", "value"), [("max_width", 0), ("threshold", 300), ("sensitivity", 500)]
)
def test_rejects_a_config_copied_past_its_bounds(field: str, value: int) -> None:
    good = DetectorConfig()
    # model_copy(update=...) does not validate: the detector must check the values itself.
    bad = good.model_copy(update={field: value})
    with pytest.raises(ValidationError, match=field):
        MotionDetector((H, W), bad)
    det = MotionDetector((H, W), good)
    with pytest.raises(ValidationError, match=field):
        det.update_config(bad)
    assert det.config == good
    assert det.detect(np.zeros((H, W), np.uint8)).warming_up


@pytest.mark.parametrize("shape", [(H, W), (1080, 1920), (200, 300)])
def test_every_array_layout_gives_the_same_result(shape: tuple[int, int]) -> None:
    h, w = shape
    scene = background(h, w)
    frames = [camera(scene, np.random.default_rng(i)) for i in range(8)]
    frames += [
        camera(with_box(scene, (w // 4, h // 4, w // 2, h // 2), 230.0), np.random.default_rng(9))
    ]

    def layouts(f: np.ndarray) -> list[np.ndarray]:
        ro = f.copy()
        ro.flags.writeable = False
        flipped = np.ascontiguousarray(f[::-1, ::-1])[::-1, ::-1]
        wide = np.zeros((h, 2 * w), np.uint8)
        wide[:, 1::2] = f
        return [f, np.asfortranarray(f), ro, flipped, wide[:, 1::2]]

    runs = []
    for k in range(5):
        det = MotionDetector(shape)
        results = [det.detect(layouts(f)[k]) for f in frames]
        runs.append([(r.motion, r.score, r.boxes, r.mask.tobytes()) for r in results])
    assert runs[0][-1][0], "the object is not found"
    for k in range(1, 5):
        assert runs[k] == runs[0], f"layout {k} differs"
