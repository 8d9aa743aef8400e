"""Camera passwords never reach logs, status or errors, whatever happens to the camera."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import cv2
import numpy as np
import pytest
from ingest_harness import (
    basic_auth_snapshot_server,
    camera,
    closed_port,
    running,
    silent_server,
    take_frames,
    wait_until,
)

from clients.sim import HttpCamera, RtspCamera
from server.cameras import CameraReader

USER = "admin"
PASSWORD = "Tr0ub4dor&3-ingest"


def _assert_nowhere(reader: CameraReader, caplog: pytest.LogCaptureFixture) -> None:
    texts = [caplog.text, repr(reader.status), str(reader.status.to_dict())]
    texts += [str(r.args) for r in caplog.records]
    for text in texts:
        assert PASSWORD not in text
        assert quote(PASSWORD, safe="") not in text


@pytest.fixture
def secure_rtsp(clip: Path) -> Iterator[RtspCamera]:
    with RtspCamera(clip, path="cam1", user=USER, password=PASSWORD) as cam:
        yield cam


async def test_right_password_connects_and_is_not_logged(
    secure_rtsp: RtspCamera, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with running(camera(secure_rtsp.url_with_credentials)) as reader:
        await take_frames(reader, 2)
        _assert_nowhere(reader, caplog)
    assert f"camera {reader.settings.id} online (rtsp 640x360)" in caplog.text


async def test_wrong_password_is_reported_without_it(
    secure_rtsp: RtspCamera, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = secure_rtsp.url.replace("rtsp://", f"rtsp://{USER}:{quote(PASSWORD)}x@")
    async with running(camera(url)) as reader:
        await wait_until(reader, lambda s: s.state == "offline", 5, "offline")
        where = secure_rtsp.url.split("/")[2]
        assert reader.status.last_error == (
            f"authentication failed (401) at {where}: check the user name and password"
        )
        _assert_nowhere(reader, caplog)
    assert "authentication failed" in caplog.text


@pytest.mark.parametrize("scheme", ["rtsp", "http"])
async def test_unreachable_camera_errors_carry_no_password(
    caplog: pytest.LogCaptureFixture, scheme: str
) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"{scheme}://{USER}:{quote(PASSWORD)}@127.0.0.1:{closed_port()}/stream?pwd={PASSWORD}"
    async with running(camera(url)) as reader:
        await wait_until(reader, lambda s: s.state == "offline", 5, "offline")
        assert "connection refused" in (reader.status.last_error or "")
        _assert_nowhere(reader, caplog)
    with silent_server() as port:
        url = f"{scheme}://{USER}:{quote(PASSWORD)}@127.0.0.1:{port}/s"
        async with running(camera(url, open_timeout=1.0)) as reader:
            await wait_until(reader, lambda s: s.state == "offline", 5, "offline")
            assert "timed out" in (reader.status.last_error or "")
            _assert_nowhere(reader, caplog)


@pytest.mark.parametrize("attr", ["mjpeg_url", "snapshot_url"])
async def test_http_camera_with_credentials(
    http_camera: HttpCamera, caplog: pytest.LogCaptureFixture, attr: str
) -> None:
    caplog.set_level(logging.DEBUG)
    url = getattr(http_camera, attr).replace("http://", f"http://{USER}:{quote(PASSWORD)}@")
    url += f"?user={USER}&pwd={quote(PASSWORD)}"  # the Foscam way
    async with running(camera(url)) as reader:
        await take_frames(reader, 2)
        _assert_nowhere(reader, caplog)
    wrong = url.replace("/cam1/", "/cam9/")
    async with running(camera(wrong)) as reader:
        await wait_until(reader, lambda s: s.state == "offline", 5, "offline")
        assert "not found (404)" in (reader.status.last_error or "")
        _assert_nowhere(reader, caplog)


async def test_snapshot_camera_asking_for_basic_auth(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    jpeg = cv2.imencode(".jpg", np.full((120, 160, 3), 90, np.uint8))[1].tobytes()
    with basic_auth_snapshot_server(USER, PASSWORD, jpeg) as port:
        url = f"http://{USER}:{quote(PASSWORD, safe='')}@127.0.0.1:{port}/snap.jpg"
        # Digest is offered first; this camera answers with a Basic challenge instead.
        async with running(camera(url, snapshot_interval=0.1)) as reader:
            frames = await take_frames(reader, 2)
            assert (frames[-1].width, frames[-1].height) == (160, 120)
            assert reader.status.kind == "snapshot"
            _assert_nowhere(reader, caplog)
        wrong = url.replace(quote(PASSWORD, safe=""), "nope")
        async with running(camera(wrong)) as reader:
            await wait_until(reader, lambda s: s.state == "offline", 5, "offline")
            assert reader.status.last_error == (
                f"authentication failed (401) at 127.0.0.1:{port}: check the user name and password"
            )
            _assert_nowhere(reader, caplog)
