"""Events from the simulator's moving objects, over real HTTP: start, end after off_delay,
snapshots, filters, paging, deletion; metrics and readiness while it runs."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from server_harness import serve, settings_for

from server.messages import EventEndMessage, EventStartMessage, EventUpdateMessage


async def test_moving_objects_make_events_that_end_after_off_delay(
    tmp_path: Path, sim_cameras: Any
) -> None:
    cams = [
        {
            "id": "cycle",
            "url": sim_cameras.mjpeg_url_for("cycle"),
            "events": {"min_frames": 2, "off_delay": 1.5},
            "zones": [{"name": "left", "points": [[0, 0], [0.5, 0], [0.5, 1], [0, 1]]}],
        }
    ]
    async with serve(settings_for(tmp_path, cams)) as srv:
        c = srv.client
        start = await srv.wait_for(EventStartMessage, within=30)
        ev_id = start.event.id
        assert start.event.camera == "cycle"
        assert start.event.end is None
        end = await srv.wait_for(EventEndMessage, lambda m: m.event.id == ev_id, within=30)
        # It ended because motion stopped for off_delay: the end message came at least
        # off_delay after the last motion (the event's end time).
        assert end.event.end is not None
        assert not end.event.interrupted
        assert end.event.peak_score > 0
        ended_after = srv.messages.index(end)
        motion_after_end = [
            m
            for m in srv.messages[:ended_after]
            if m.type == "motion" and m.motion and m.ts > end.event.end.timestamp() + 0.01
        ]
        assert motion_after_end == []
        assert any(
            isinstance(m, EventUpdateMessage) and m.event.id == ev_id for m in srv.messages
        ), "no update (peak or snapshot) for the event"

        r = await c.get(f"/api/events/{ev_id}")
        assert r.status_code == 200
        stored = r.json()
        assert stored["end"] is not None
        assert stored["has_snapshot"] is True
        snap = await c.get(f"/api/events/{ev_id}/snapshot.jpg")
        assert snap.status_code == 200
        assert snap.content[:2] == b"\xff\xd8"
        start_snap = await c.get(f"/api/events/{ev_id}/snapshot.jpg", params={"kind": "start"})
        assert start_snap.status_code == 200

        listed = (await c.get("/api/events", params={"camera": "cycle"})).json()
        assert ev_id in [e["id"] for e in listed["events"]]
        assert (await c.get("/api/events", params={"camera": "nope"})).json()["events"] == []
        since = stored["start"]
        page = (await c.get("/api/events", params={"since": since, "limit": 1})).json()
        assert page["events"][0]["start"] >= since
        assert (await c.get("/api/events", params={"until": since})).json()["events"] == [
            e for e in listed["events"] if e["start"] < since
        ]
        assert (await c.get("/api/events", params={"since": "2000-01-01"})).json() == listed
        for when in ("notadate", "1e400"):  # garbage, and a number past any datetime
            refused = await c.get("/api/events", params={"since": when, "until": when})
            assert refused.status_code == 422
            for detail in refused.json()["detail"]:
                assert "ISO 8601" in detail["msg"], detail
                assert "Unix seconds" in detail["msg"], detail
        bad = await c.get("/api/events", params={"cursor": "not-an-id", "limit": 0})
        assert bad.status_code == 422
        assert {tuple(d["loc"]) for d in bad.json()["detail"]} == {
            ("query", "cursor"),
            ("query", "limit"),
        }

        metrics = (await c.get("/metrics")).text
        assert re.search(r'motionhub_frames_processed_total\{camera="cycle"\} [1-9]', metrics)
        assert re.search(r'motionhub_events_total\{camera="cycle"\} [1-9]', metrics)
        assert 'motionhub_camera_up{camera="cycle"} 1.0' in metrics
        assert "motionhub_detect_seconds_bucket" in metrics
        assert "motionhub_websocket_clients" in metrics
        assert "motionhub_mqtt_connected 0.0" in metrics
        assert "127.0.0.1" not in metrics
        ready = await c.get("/readyz")
        assert ready.status_code == 200
        assert ready.json() == {"ready": True, "cameras": True, "storage": True, "mqtt": None}

        assert (await c.delete(f"/api/events/{ev_id}")).status_code == 204
        assert (await c.get(f"/api/events/{ev_id}")).status_code == 404
        assert (await c.get(f"/api/events/{ev_id}/snapshot.jpg")).status_code == 404
        assert not list((tmp_path / "snapshots" / "cycle").glob(f"{ev_id}-*"))


async def test_paging_walks_every_event_once(tmp_path: Path) -> None:
    from server.events import utc
    from server.messages import Event

    async with serve(settings_for(tmp_path, [])) as srv:
        ids = []
        for i in range(7):
            ev_id = srv.core.ids.new(1_750_000_000 + i)
            ids.append(ev_id)
            srv.core.storage.save_event(
                Event(
                    id=ev_id,
                    camera="c",
                    start=utc(1_750_000_000 + i),
                    end=utc(1_750_000_001 + i),
                    peak_score=0.1,
                )
            )
        seen, cursor = [], None
        while True:
            params: dict[str, Any] = {"limit": 3}
            if cursor:
                params["cursor"] = cursor
            page = (await srv.client.get("/api/events", params=params)).json()
            seen += [e["id"] for e in page["events"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == list(reversed(ids))


async def test_unwritable_snapshots_are_reported_while_detection_goes_on(
    tmp_path: Path, sim_cameras: Any
) -> None:
    # A file where the camera's snapshot directory belongs: every snapshot write fails for
    # real (directory permissions would not stop root).
    (tmp_path / "snapshots").mkdir(parents=True)
    (tmp_path / "snapshots" / "busy").write_bytes(b"not a directory")
    cams = [{"id": "busy", "url": sim_cameras.mjpeg_url_for("busy"),
             "events": {"min_frames": 2}}]  # fmt: skip
    async with serve(settings_for(tmp_path, cams)) as srv:
        start = await srv.wait_for(EventStartMessage, within=30)
        c = srv.client
        for _ in range(100):
            status = (await c.get("/api/status")).json()
            if status["storage"]["snapshot_error"]:
                break
            await asyncio.sleep(0.1)
        assert "cannot write snapshot" in status["storage"]["snapshot_error"]
        assert status["storage"]["writable"] is False
        assert status["storage"]["unsaved_events"] == 0  # the database itself takes writes
        metrics = (await c.get("/metrics")).text
        assert re.search(r'motionhub_storage_errors_total\{kind="snapshot"\} [1-9]', metrics)
        assert "motionhub_storage_writable 0.0" in metrics
        stored = (await c.get(f"/api/events/{start.event.id}")).json()
        assert stored["has_snapshot"] is False
        pipeline = srv.core.pipeline("busy")
        assert pipeline is not None
        before = pipeline.processed
        await asyncio.sleep(1.0)
        assert pipeline.processed >= before + 5


async def test_a_snapshot_directory_that_cannot_be_read_is_a_503_not_a_500(
    tmp_path: Path, sim_cameras: Any
) -> None:
    cams = [{"id": "busy", "url": sim_cameras.mjpeg_url_for("busy"), "events": {"min_frames": 2}}]
    async with serve(settings_for(tmp_path, cams)) as srv:
        update = await srv.wait_for(EventUpdateMessage, lambda m: m.event.has_snapshot, within=30)
        url = f"/api/events/{update.event.id}/snapshot.jpg"
        assert (await srv.client.get(url)).status_code == 200
        # The directory replaced by a file (as a share that went away leaves a stale
        # mount): reading fails with ENOTDIR, a real error other than "not found".
        snapshots = tmp_path / "snapshots"
        snapshots.rename(tmp_path / "snapshots.away")
        snapshots.write_bytes(b"not a directory")
        r = await srv.client.get(url)
        assert r.status_code == 503, r.text
        assert "cannot read snapshots" in r.json()["detail"]
        snapshots.unlink()
        (tmp_path / "snapshots.away").rename(snapshots)
        again = await srv.client.get(url)
        assert again.status_code == 200
        assert again.content.startswith(b"\xff\xd8")
