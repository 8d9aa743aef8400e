"""The HTTP camera: MJPEG stream, snapshots, faults and outages, against the real server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import httpx
import numpy as np
import pytest
from sim_harness import MOVING, changed_fraction, decode_jpeg, ends, mjpeg_parts

from clients.sim import HttpCamera, Scene, SceneSpec
from clients.sim.process import port_open

pytestmark = pytest.mark.usefixtures("no_leftover_children")

SOI, EOI = b"\xff\xd8", b"\xff\xd9"


@pytest.fixture(scope="module")
def cam() -> Iterator[HttpCamera]:
    """Two cameras on one server; tests that change faults reset them."""
    still = MOVING.model_copy(update={"seed": 12})
    with HttpCamera({"cam1": MOVING, "cam2": still}, boundary="myboundary") as camera:
        yield camera


@pytest.fixture(autouse=True)
def _faults_cleared(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "cam" in request.fixturenames:
        camera: HttpCamera = request.getfixturevalue("cam")
        if camera.running:
            camera.set_fault("none")


def read_stream(url: str, seconds: float) -> tuple[httpx.Headers, bytes]:
    """Everything an MJPEG client receives in ``seconds``."""
    data = bytearray()
    with httpx.stream("GET", url, timeout=5.0) as response:
        assert response.status_code == 200
        end = time.monotonic() + seconds
        for chunk in response.iter_bytes():
            data += chunk
            if time.monotonic() > end:
                break
        return response.headers, bytes(data)


def test_snapshot_is_the_current_frame_as_a_jpeg(cam: HttpCamera) -> None:
    response = httpx.get(cam.snapshot_url, timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    first = decode_jpeg(response.content)
    assert first is not None
    assert first.shape == (MOVING.height, MOVING.width, 3)
    time.sleep(0.5)
    later = decode_jpeg(httpx.get(cam.snapshot_url, timeout=5).content)
    assert later is not None
    assert (
        changed_fraction(first.mean(axis=2).astype("uint8"), later.mean(axis=2).astype("uint8"))
        > 0.003
    )
    # The first camera also answers without its name, as a single-camera device would.
    assert decode_jpeg(httpx.get(f"{cam.base_url}/snapshot.jpg", timeout=5).content) is not None


def test_the_frame_shown_follows_the_wall_clock(cam: HttpCamera) -> None:
    scene = Scene(MOVING)
    before = time.time()
    img = decode_jpeg(httpx.get(cam.snapshot_url, timeout=5).content)
    after = time.time()
    assert img is not None
    candidates = range(int(before * MOVING.fps), int(after * MOVING.fps) + 1)
    errors = [np.abs(img.astype(np.int16) - scene.frame(i)).mean() for i in candidates]
    assert min(errors) < 6, errors


def test_mjpeg_stream_delivers_valid_jpegs_at_the_frame_rate(cam: HttpCamera) -> None:
    headers, data = read_stream(cam.mjpeg_url, 2.0)
    assert headers["content-type"] == "multipart/x-mixed-replace; boundary=myboundary"
    parts = mjpeg_parts(data, "myboundary")
    assert 0.6 * 2 * MOVING.fps <= len(parts) <= 1.4 * 2 * MOVING.fps + 2
    for part in parts:
        img = decode_jpeg(part)
        assert img is not None
        assert img.shape == (MOVING.height, MOVING.width, 3)
        assert part.startswith(SOI)
        assert part.endswith(EOI)


def test_truncated_fault_cuts_jpegs_short_but_keeps_the_framing(cam: HttpCamera) -> None:
    normal = len(httpx.get(cam.snapshot_url, timeout=5).content)
    cam.set_fault("truncated")
    snap = httpx.get(cam.snapshot_url, timeout=5).content
    assert snap.startswith(SOI)
    assert not snap.endswith(EOI)
    assert len(snap) < 0.8 * normal
    parts = mjpeg_parts(read_stream(cam.mjpeg_url, 1.0)[1], "myboundary")
    assert len(parts) >= 5
    for part in parts:
        assert part.startswith(SOI)
        assert not part.endswith(EOI)
        assert len(part) < 0.8 * normal


def test_garbage_fault_sends_random_bytes_without_boundaries(cam: HttpCamera) -> None:
    cam.set_fault("garbage")
    snap = httpx.get(cam.snapshot_url, timeout=5).content
    assert decode_jpeg(snap) is None
    _headers, data = read_stream(cam.mjpeg_url, 1.0)
    assert len(data) > 10_000
    assert b"--myboundary" not in data
    assert b"Content-Type" not in data


def test_stall_fault_keeps_connections_open_and_silent(cam: HttpCamera) -> None:
    cam.set_fault("stall")
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(cam.snapshot_url, timeout=httpx.Timeout(5.0, read=1.0))
    with httpx.stream("GET", cam.mjpeg_url, timeout=httpx.Timeout(5.0, read=1.0)) as response:
        assert response.status_code == 200
        with pytest.raises(httpx.ReadTimeout):
            next(response.iter_bytes())
    cam.set_fault("none")
    assert decode_jpeg(httpx.get(cam.snapshot_url, timeout=5).content) is not None


def test_a_fault_can_target_one_camera(cam: HttpCamera) -> None:
    cam.set_fault("garbage", camera="cam2")
    assert decode_jpeg(httpx.get(cam.snapshot_url_for("cam2"), timeout=5).content) is None
    assert decode_jpeg(httpx.get(cam.snapshot_url_for("cam1"), timeout=5).content) is not None
    state = httpx.get(cam.control_url, timeout=5).json()
    assert state == {"cameras": {"cam1": {"fault": "none"}, "cam2": {"fault": "garbage"}}}


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/control", {"fault": "melted"}, 400),
        ("/control", {"bogus": 1}, 400),
        ("/control", {"outage_seconds": -1}, 400),
        ("/control", {"outage_seconds": True}, 400),
        ("/cam1/control", {"outage_seconds": 1}, 400),
        ("/nocam/control", {"fault": "none"}, 404),
    ],
)
def test_control_rejects_bad_requests(
    cam: HttpCamera, path: str, body: dict[str, object], status: int
) -> None:
    response = httpx.post(cam.base_url + path, json=body, timeout=5)
    assert response.status_code == status
    assert "error" in response.json()
    assert httpx.get(cam.base_url + "/nocam/mjpeg", timeout=5).status_code == 404
    assert cam.running


def test_outage_closes_the_port_cuts_streams_and_comes_back(cam: HttpCamera) -> None:
    with httpx.stream("GET", cam.mjpeg_url, timeout=5.0) as response:
        chunks = response.iter_bytes()
        next(chunks)
        started = time.monotonic()
        cam.outage(1.5)
        assert not port_open(cam.host, cam.port)
        assert ends(chunks, 1000, (StopIteration, httpx.HTTPError))
    with pytest.raises(httpx.ConnectError):
        httpx.get(cam.snapshot_url, timeout=2)
    while not port_open(cam.host, cam.port) and time.monotonic() - started < 10:
        time.sleep(0.05)
    back_after = time.monotonic() - started
    assert 1.4 < back_after < 4, back_after
    assert decode_jpeg(httpx.get(cam.snapshot_url, timeout=5).content) is not None


def test_stop_and_start_on_the_same_port() -> None:
    camera = HttpCamera(MOVING)
    port = camera.port
    with camera:
        pid = camera.pid
        assert httpx.get(camera.snapshot_url, timeout=5).status_code == 200
        camera.stop()
        assert not camera.running
        with pytest.raises(httpx.ConnectError):
            httpx.get(camera.snapshot_url, timeout=2)
        camera.start()
        assert (camera.port, camera.running) == (port, True)
        assert camera.pid != pid
        assert decode_jpeg(httpx.get(camera.snapshot_url, timeout=5).content) is not None


def test_serves_a_video_file(tmp_path: Path) -> None:
    video = tmp_path / "clip.avi"
    scene = Scene(SceneSpec(width=160, height=96, fps=10))
    with av.open(str(video), "w") as out:
        stream = out.add_stream("mjpeg", rate=10)
        stream.width, stream.height, stream.pix_fmt = 160, 96, "yuvj420p"
        for i in range(10):
            frame = av.VideoFrame.from_ndarray(scene.frame(i), format="bgr24")
            frame.pts, frame.time_base = i, Fraction(1, 10)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    with HttpCamera(video, name="file", cache=tmp_path / "cache") as camera:
        assert camera.mjpeg_url.endswith("/file/mjpeg")
        img = decode_jpeg(httpx.get(camera.snapshot_url, timeout=5).content)
        assert img is not None
        assert img.shape == (96, 160, 3)
        index = httpx.get(camera.base_url + "/", timeout=5).json()
        assert index["cameras"]["file"]["fps"] == 10.0
