"""How long a client may reuse an event's snapshot, over real HTTP with a simulated camera:
while the event is open a better peak frame can replace it, so it must be asked for again;
once the event has ended it no longer changes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from server_harness import serve, settings_for

from server.messages import EventEndMessage, EventUpdateMessage


async def test_an_open_events_snapshot_is_revalidated_an_ended_ones_is_kept(
    tmp_path: Path, sim_cameras: Any
) -> None:
    cams = [
        {
            # Objects always moving: its event opens and stays open.
            "id": "busy",
            "url": sim_cameras.mjpeg_url_for("busy"),
            "events": {"min_frames": 2},
        },
        {
            # Motion then stillness: events start and end.
            "id": "cycle",
            "url": sim_cameras.mjpeg_url_for("cycle"),
            "events": {"min_frames": 2, "off_delay": 1.0},
        },
    ]
    async with serve(settings_for(tmp_path, cams)) as srv:
        c = srv.client
        update = await srv.wait_for(
            EventUpdateMessage,
            lambda m: m.event.camera == "busy" and m.event.has_snapshot,
            within=30,
        )
        open_id = update.event.id
        snap = await c.get(f"/api/events/{open_id}/snapshot.jpg")
        assert snap.status_code == 200
        assert snap.content[:2] == b"\xff\xd8"
        still_open = (await c.get(f"/api/events/{open_id}")).json()
        assert still_open["end"] is None, "the busy camera's event ended; cannot check"
        cache = snap.headers["cache-control"]
        assert "no-cache" in cache or "no-store" in cache, cache
        assert "max-age=86400" not in cache

        end = await srv.wait_for(
            EventEndMessage,
            lambda m: m.event.camera == "cycle" and m.event.has_snapshot,
            within=30,
        )
        ended = await c.get(f"/api/events/{end.event.id}/snapshot.jpg")
        assert ended.status_code == 200
        assert ended.headers["cache-control"] == "max-age=86400"
