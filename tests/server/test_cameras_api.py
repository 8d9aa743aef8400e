"""Camera CRUD over real HTTP against real simulated cameras, live changes, bad payloads."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from server_harness import camera_threads, serve, settings_for

from server.api.models import CAMERA_READ_ONLY, CameraPatch
from server.config import CameraSettings
from server.logs import JsonFormatter, TextFormatter
from server.messages import CameraRemoved, MotionMessage

PASSWORD = "s3cr3t-pw-xyz"


def with_password(url: str) -> str:
    return url.replace("http://", f"http://viewer:{PASSWORD}@")


@contextlib.asynccontextmanager
async def one_camera(tmp_path: Path, url: str) -> AsyncIterator[Any]:
    """A server with one camera, ``cam1`` at ``url`` (detection off), once it is online."""
    cams = [{"id": "cam1", "url": url, "detect": {"enabled": False}}]
    async with serve(settings_for(tmp_path, cams)) as srv:
        await srv.wait_online("cam1")
        yield srv


async def test_crud_live_changes_and_clean_delete(tmp_path: Path, sim_cameras: Any) -> None:
    async with serve(settings_for(tmp_path, [])) as srv:
        c = srv.client
        assert (await c.get("/api/cameras")).json() == {"cameras": []}

        body = {
            "id": "yard",
            "name": "Yard",
            "url": with_password(sim_cameras.mjpeg_url_for("cycle")),
            "events": {"min_frames": 2, "off_delay": 1.0},
        }
        r = await c.post("/api/cameras", json=body)
        assert r.status_code == 201, r.text
        assert PASSWORD not in r.text
        created = r.json()
        assert created["url"].startswith("http://***:***@127.0.0.1")
        assert created["events"]["off_delay"] == 1.0
        assert (await c.post("/api/cameras", json=body)).status_code == 409

        before = time.time()
        await srv.wait_online("yard")
        listed = (await c.get("/api/cameras")).json()["cameras"]
        assert [cam["id"] for cam in listed] == ["yard"]
        assert listed[0]["last_error"] is None
        # The live status in full: the kind in use (auto resolved), frame size and times.
        live = listed[0]
        assert (live["kind"], live["source_kind"]) == ("auto", "mjpeg")
        assert (live["width"], live["height"]) == (320, 240)
        assert live["frames"] >= 1
        assert live["last_error_at"] is None
        assert before - 10 <= live["since"] <= live["last_frame_at"] <= time.time()
        assert PASSWORD not in (await c.get("/api/cameras/yard")).text

        # A zone over the whole frame: motion messages start reporting it, no restart.
        reader_before = srv.core._runtimes["yard"].reader
        zone = {"name": "all", "points": [[0, 0], [1, 0], [1, 1], [0, 1]]}
        r = await c.patch("/api/cameras/yard", json={"zones": [zone], "detect": {"threshold": 30}})
        assert r.status_code == 200, r.text
        assert r.json()["zones"] == [zone]
        assert r.json()["detect"]["threshold"] == 30
        assert r.json()["detect"]["sensitivity"] == 50  # merged, not replaced
        assert srv.core._runtimes["yard"].reader is reader_before
        msg = await srv.wait_for(MotionMessage, lambda m: m.camera == "yard" and "all" in m.zones)
        assert set(msg.zones) == {"all"}
        # Detection runs on the camera's reader thread, with the patched config handed over.
        stage = srv.core._runtimes["yard"].pipeline.detector
        assert stage.thread == "camera-yard"
        assert stage.config.threshold == 30
        assert [z.name for z in stage.config.zones] == ["all"]

        # A new detect.fps applies live to the reader's rate limit: no reconnect.
        r = await c.patch("/api/cameras/yard", json={"detect": {"fps": 4}})
        assert r.status_code == 200, r.text
        assert srv.core._runtimes["yard"].reader is reader_before
        assert reader_before._pump.rate.interval == pytest.approx(1 / 4)
        r = await c.patch("/api/cameras/yard", json={"detect": {"fps": 10}})
        assert r.status_code == 200, r.text
        assert reader_before._pump.rate.interval == pytest.approx(1 / 10)
        for _ in range(40):  # the rate is measured over a second or more
            if (fps := (await c.get("/api/cameras/yard")).json()["fps"]) > 0:
                break
            await asyncio.sleep(0.1)
        assert 5 < fps < 15

        # The redacted URL sent back keeps the stored password; a new name applies.
        r = await c.patch("/api/cameras/yard", json={"url": created["url"], "name": "Back yard"})
        assert r.status_code == 200, r.text
        assert srv.core.camera("yard").url == body["url"]
        assert r.json()["name"] == "Back yard"

        snap = await c.get("/api/cameras/yard/snapshot.jpg", params={"boxes": 1})
        assert snap.status_code == 200
        assert snap.headers["content-type"] == "image/jpeg"
        assert snap.content[:2] == b"\xff\xd8"

        assert camera_threads("camera-yard")
        r = await c.delete("/api/cameras/yard")
        assert r.status_code == 204
        assert (await c.get("/api/cameras/yard")).status_code == 404
        assert (await c.delete("/api/cameras/yard")).status_code == 404
        await srv.wait_for(CameraRemoved, lambda m: m.camera == "yard")
        for _ in range(50):
            if not camera_threads("camera-yard"):
                break
            await asyncio.sleep(0.1)
        assert camera_threads("camera-yard") == []


async def test_mjpeg_stream_is_capped_and_ends_on_disconnect(
    tmp_path: Path, sim_cameras: Any
) -> None:
    cams = [{"id": "busy", "url": sim_cameras.mjpeg_url_for("busy")}]
    async with serve(settings_for(tmp_path, cams)) as srv:
        await srv.wait_online("busy")
        processed_before = srv.core.pipeline("busy").processed  # type: ignore[union-attr]
        loop = asyncio.get_running_loop()
        started = loop.time()
        parts = 0
        async with srv.client.stream(
            "GET", "/api/cameras/busy/stream.mjpeg", params={"fps": 4}
        ) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("multipart/x-mixed-replace")
            async for chunk in r.aiter_bytes():
                parts += chunk.count(b"--frame\r\n")
                if parts >= 6:
                    break
        elapsed = loop.time() - started
        # 6 frames at 4 fps: at least ~1.25 s (the first is immediate).
        assert elapsed >= 1.1, elapsed
        await asyncio.sleep(0.5)
        # Detection kept going at the camera's rate while the stream ran.
        processed = srv.core.pipeline("busy").processed  # type: ignore[union-attr]
        assert processed - processed_before >= 8
        assert (await srv.client.get("/healthz")).status_code == 200
        # Uptime monitors that probe with HEAD get the same answer, without a body.
        head = await srv.client.head("/healthz")
        assert head.status_code == 200
        assert head.content == b""


async def test_bad_payloads_get_field_errors_without_secrets(
    tmp_path: Path, sim_cameras: Any
) -> None:
    cams = [{"id": "cam1", "url": sim_cameras.mjpeg_url_for("busy")}]
    async with serve(settings_for(tmp_path, cams, max_cameras=1)) as srv:
        c = srv.client
        zone = {"name": "z", "points": [[0, 0], [2, 0], [1, 1]]}
        cases: list[tuple[str, str, dict[str, Any], list[Any]]] = [
            ("POST", "", {"id": "x"}, ["body", "url"]),
            ("POST", "", {"id": "Bad Id!", "url": "rtsp://h/s"}, ["body", "id"]),
            ("POST", "", {"id": "x", "url": "rtsp://h/s", "colour": 1}, ["body", "colour"]),
            ("POST", "", {"id": "x", "url": f"ftp://u:{PASSWORD}@h/s"}, ["body", "url"]),
            ("PATCH", "/cam1", {"detect": {"threshold": 999}}, ["body", "detect", "threshold"]),
            ("PATCH", "/cam1", {"url": f"gopher://u:{PASSWORD}@h/"}, ["body", "url"]),
            ("PATCH", "/cam1", {"zones": [zone]}, ["body", "zones", 0, "points", 1, 0]),
            ("PATCH", "/cam1", {"events": {"min_frames": 0}}, ["body", "events", "min_frames"]),
            ("PATCH", "/cam1", {"id": "other"}, ["body", "id"]),
            ("PATCH", "/cam1", {"name": "a\nb"}, ["body", "name"]),
            ("PATCH", "/cam1", {"name": "a\u0000b"}, ["body", "name"]),
        ]
        for method, path, payload, loc in cases:
            r = await c.request(method, "/api/cameras" + path, json=payload)
            assert r.status_code == 422, (payload, r.text)
            detail = r.json()["detail"]
            assert any(d["loc"] == loc for d in detail), (loc, detail)
            assert all({"loc", "msg", "type"} == set(d) for d in detail)
            assert PASSWORD not in r.text
        # Our own checks' messages come back as written, without pydantic's prefix.
        flat = {"name": "flat", "points": [[0, 0], [0.5, 0.5], [1, 1]]}
        r = await c.patch("/api/cameras/cam1", json={"zones": [flat]})
        assert r.status_code == 422, r.text
        assert [d["msg"] for d in r.json()["detail"]] == [
            "zone 'flat': its points enclose no area (they are all on one line)"
        ]
        there_and_back = [[0.1, 0.1], [0.5, 0.9], [0.9, 0.2], [0.5, 0.9], [0.1, 0.1]]
        r = await c.patch("/api/cameras/cam1", json={"masks": [there_and_back]})
        assert r.status_code == 422, r.text
        assert [(d["loc"], d["msg"]) for d in r.json()["detail"]] == [
            (
                ["body", "masks", 0],
                "the mask's points enclose no area (the outline only runs back over itself)",
            )
        ]
        r = await c.post(
            "/api/cameras", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert r.status_code == 422
        # JSON sent under another type: said so, not "should be a valid dictionary".
        r = await c.post(
            "/api/cameras",
            content=b'{"id": "cam2", "url": "rtsp://10.0.0.1/s"}',
            headers={"content-type": "text/plain"},
        )
        assert r.status_code == 415, r.text
        assert "Content-Type: application/json" in r.json()["detail"]
        assert "'text/plain'" in r.json()["detail"]
        # Over server.max_cameras.
        r = await c.post("/api/cameras", json={"id": "cam2", "url": "rtsp://10.0.0.1/s"})
        assert r.status_code == 422
        assert "max_cameras" in r.text
        # Bodies over server.max_body_bytes.
        r = await c.post(
            "/api/cameras", content=b"x" * (2 << 20), headers={"content-type": "application/json"}
        )
        assert r.status_code == 413
        assert srv.core.camera("cam1").detect.threshold == 0


async def test_a_camera_or_zone_whose_home_assistant_entity_would_clash_is_refused(
    tmp_path: Path, sim_cameras: Any
) -> None:
    url = sim_cameras.mjpeg_url_for("busy")
    triangle = [[0, 0], [1, 0], [1, 1]]
    cams = [{"id": "a", "url": url, "detect": {"enabled": False}}]
    async with serve(settings_for(tmp_path, cams)) as srv:
        c = srv.client
        ok = await c.post("/api/cameras", json={"id": "a_zone_b", "url": url})
        assert ok.status_code == 201, ok.text
        # Camera a's zone "b_motion" would be entity a_zone_b_motion, which is a_zone_b's
        # motion entity already.
        zones = [{"name": "b_motion", "points": triangle}]
        r = await c.patch("/api/cameras/a", json={"zones": zones})
        assert r.status_code == 422, r.text
        assert "would share the Home Assistant entity 'a_zone_b_motion'" in r.text
        assert (await srv.camera("a"))["zones"] == []
        # And the other way round: a new camera whose entity a zone already has.
        zones = [{"name": "x_fps", "points": triangle}]
        fine = await c.patch("/api/cameras/a", json={"zones": zones})
        assert fine.status_code == 200, fine.text
        r = await c.post("/api/cameras", json={"id": "a_zone_x", "url": url})
        assert r.status_code == 422, r.text
        assert "'a_zone_x_fps'" in r.text
        assert [cam["id"] for cam in (await c.get("/api/cameras")).json()["cameras"]] == [
            "a",
            "a_zone_b",
        ]


async def test_a_masked_credential_is_refused_unless_the_url_is_exactly_as_shown(
    tmp_path: Path, sim_cameras: Any
) -> None:
    real = with_password(sim_cameras.mjpeg_url_for("busy"))
    async with one_camera(tmp_path, real) as srv:
        c = srv.client
        reader = srv.core._runtimes["cam1"].reader
        shown = (await srv.camera("cam1"))["url"]
        port = urlsplit(shown).port
        # A form that changed only the port sends the mask back as the credentials: taking it
        # would store '***' as the password (the camera then gets 401s for good), and taking
        # the stored password to the new address could hand it to another host.
        moved = shown.replace(f":{port}/", f":{port + 1}/")
        for body in ({"url": moved}, {"detect_url": moved}, {"url": "rtsp://u:***@10.0.0.9/s"}):
            r = await c.patch("/api/cameras/cam1", json=body)
            assert r.status_code == 422, r.text
            (err,) = r.json()["detail"]
            assert err["loc"] == ["body", next(iter(body))]
            assert "give the real user name and password" in err["msg"]
            assert "exactly as the API shows it" in err["msg"]
            assert PASSWORD not in r.text
        assert srv.core.camera("cam1").url == real
        assert srv.core.camera("cam1").detect_url is None
        assert srv.core._runtimes["cam1"].reader is reader  # not reconnected
        assert (await srv.core.storage.cameras.load()).cameras == []  # nothing stored
        assert (await srv.camera("cam1"))["status"] == "online"

        r = await c.post("/api/cameras", json={"id": "cam2", "url": moved})
        assert r.status_code == 422, r.text
        assert r.json()["detail"][0]["loc"] == ["body", "url"]
        assert "give the real user name and password" in r.text
        assert (await c.get("/api/cameras/cam2")).status_code == 404

        # The URL exactly as shown, with another change, still keeps the stored password.
        r = await c.patch("/api/cameras/cam1", json={"url": shown, "name": "One"})
        assert r.status_code == 200, r.text
        assert srv.core.camera("cam1").url == real
        (stored,) = (await srv.core.storage.cameras.load()).cameras
        assert (stored.url, stored.name) == (real, "One")
        assert srv.core._runtimes["cam1"].reader is reader


async def test_the_camera_object_get_returns_can_be_patched_back_whole(
    tmp_path: Path, sim_cameras: Any
) -> None:
    real = with_password(sim_cameras.mjpeg_url_for("busy"))
    async with one_camera(tmp_path, real) as srv:
        c = srv.client
        reader = srv.core._runtimes["cam1"].reader
        shown = await srv.camera("cam1")
        assert {"status", "fps", "last_error", "frames", "motion"} <= CAMERA_READ_ONLY
        assert set(shown) >= CAMERA_READ_ONLY
        r = await c.patch("/api/cameras/cam1", json={**shown, "stall_timeout": 20.0})
        assert r.status_code == 200, r.text
        assert r.json()["stall_timeout"] == 20.0
        assert srv.core.camera("cam1").stall_timeout == 20.0
        assert srv.core.camera("cam1").url == real  # credentials kept
        assert srv.core._runtimes["cam1"].reader is not reader  # a timeout reconnects

        r = await c.patch("/api/cameras/cam1", json={**shown, "colour": "red"})
        assert r.status_code == 422, r.text
        assert [(e["loc"], e["type"]) for e in r.json()["detail"]] == [
            (["body", "colour"], "extra_forbidden")
        ]
        r = await c.patch("/api/cameras/cam1", json={**shown, "id": "cam2"})
        assert r.status_code == 422, r.text
        (err,) = r.json()["detail"]
        assert err["loc"] == ["body", "id"]
        assert "cannot change" in err["msg"]
        assert srv.core.camera("cam1").stall_timeout == 20.0
        assert (await c.get("/api/cameras/cam2")).status_code == 404


def test_every_camera_setting_can_be_patched_so_none_is_ignored_as_read_only() -> None:
    assert set(CameraPatch.model_fields) == set(CameraSettings.model_fields)
    assert not CAMERA_READ_ONLY & set(CameraSettings.model_fields)


async def test_a_new_certificate_setting_reconnects_the_camera(
    tmp_path: Path, sim_cameras: Any
) -> None:
    """tls_verify and tls_ca are applied when the reader connects, so changing either (as
    for a self-signed camera refused until tls_verify is off) must give a new reader."""
    async with one_camera(tmp_path, sim_cameras.mjpeg_url_for("busy")) as srv:
        for change in ({"tls_verify": False}, {"tls_ca": str(tmp_path / "ca.pem")}):
            reader = srv.core._runtimes["cam1"].reader
            r = await srv.client.patch("/api/cameras/cam1", json=change)
            assert r.status_code == 200, r.text
            assert srv.core._runtimes["cam1"].reader is not reader, change
        r = await srv.client.patch("/api/cameras/cam1", json={"tls_ca": "relative/ca.pem"})
        assert r.status_code == 422, r.text


# Cameras that take the password elsewhere than in the user information: Foscam/Wanscam
# query names, a percent-encoded name, a Dahua/XMeye path segment and ;params.
ODD_PLACES = {
    "foscam": "http://127.0.0.1:9/videostream.cgi?loginuse=admin&loginpas=Pw-foscam-20",
    "encoded": "http://127.0.0.1:9/x?pass%77ord=Pw-encoded-19&page=2",
    "dahua": "rtsp://127.0.0.1:9/user=admin_password=Pw-dahua-13_channel=1_stream=0.sdp",
    "params": "http://127.0.0.1:9/x;password=Pw-params-16",
    "short": "http://127.0.0.1:9/x?pw=Pw-short-7&psw=Pw-short-8&p=1",
}


async def test_a_password_anywhere_in_the_url_is_masked_in_api_and_log_and_kept_on_patch(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with serve(settings_for(tmp_path, [])) as srv:
        c = srv.client
        with caplog.at_level("INFO"):
            for cam, url in ODD_PLACES.items():
                r = await c.post("/api/cameras", json={"id": cam, "url": url})
                assert r.status_code == 201, r.text
                assert "Pw-" not in r.text
        for cam, url in ODD_PLACES.items():
            shown = (await srv.camera(cam))["url"]
            assert "Pw-" not in shown
            assert "***" in shown
            # Shown back as it is, the URL keeps the real password; with a changed host,
            # the mask is refused rather than stored.
            r = await c.patch(f"/api/cameras/{cam}", json={"url": shown, "name": "N"})
            assert r.status_code == 200, r.text
            assert srv.core.camera(cam).url == url
            moved = shown.replace("127.0.0.1", "127.0.0.2")
            r = await c.patch(f"/api/cameras/{cam}", json={"url": moved})
            assert r.status_code == 422, r.text
            assert "give the real user name and password" in r.text
            assert srv.core.camera(cam).url == url
        assert "page=2" in (await srv.camera("encoded"))["url"]
        assert "_channel=1_stream=0.sdp" in (await srv.camera("dahua"))["url"]
        assert "&p=1" in (await srv.camera("short"))["url"]
    added = [rec for rec in caplog.records if rec.getMessage().startswith("camera ")]
    assert len(added) >= len(ODD_PLACES)
    for formatter in (TextFormatter(), JsonFormatter()):
        for rec in added:
            assert "Pw-" not in formatter.format(rec)


async def test_a_blank_name_shows_the_id_and_spaces_around_a_name_are_dropped(
    tmp_path: Path,
) -> None:
    async with serve(settings_for(tmp_path, [])) as srv:
        c = srv.client
        url = "http://127.0.0.1:1/"
        r = await c.post("/api/cameras", json={"id": "blank", "name": "   ", "url": url})
        assert r.status_code == 201, r.text
        assert r.json()["name"] == "blank"
        r = await c.post("/api/cameras", json={"id": "padded", "name": " Porch ", "url": url})
        assert r.json()["name"] == "Porch"
        r = await c.patch("/api/cameras/padded", json={"name": "\u3000 "})
        assert r.status_code == 200, r.text
        assert r.json()["name"] == "padded"
        listed = {cam["id"]: cam["name"] for cam in (await c.get("/api/cameras")).json()["cameras"]}
        assert listed == {"blank": "blank", "padded": "padded"}
