"""Helpers for the MQTT tests: a small in-memory core (subscriber: ``broker_harness.Recorder``).

:class:`FakeServices` implements the :class:`server.services.Services` protocol with a
real :class:`server.bus.Hub` and real settings; the MQTT service, aiomqtt and the
broker are the production ones.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from server.bus import Hub
from server.config import CameraSettings, MqttSettings, Settings
from server.ids import new_id
from server.messages import CameraInfo, CameraRemoved, Event
from server.mqtt import MqttService
from server.services import CameraNotFound

JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8 + b"\xff\xd9"
"""Bytes that start and end like a JPEG; the MQTT side treats snapshots as opaque."""

_TRIANGLE = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]]


def camera(cam_id: str, zones: list[str] | tuple[str, ...] = (), **kw: Any) -> CameraSettings:
    """A camera config whose URL is never opened."""
    return CameraSettings.model_validate(
        {
            "id": cam_id,
            "url": f"rtsp://127.0.0.1:9/{cam_id}",
            "zones": [{"name": z, "points": _TRIANGLE} for z in zones],
            **kw,
        }
    )


class FakeServices:
    """An in-memory core: cameras from real settings, snapshots in a dict."""

    def __init__(self, cameras: list[CameraSettings]) -> None:
        self.hub = Hub()
        self.settings = Settings(cameras=cameras)
        self.status: dict[str, str] = {c.id: "online" for c in cameras}
        self.snapshots: dict[str, bytes] = {}
        self.running = True
        self.calls: list[tuple[str, str, object]] = []

    def cameras(self) -> list[CameraInfo]:
        return [
            CameraInfo(
                id=c.id,
                name=c.display_name,
                status=self.status.get(c.id, "offline"),  # type: ignore[arg-type]
                zones=[z.name for z in c.zones],
                detect_enabled=c.detect.enabled,
            )
            for c in self.settings.cameras
        ]

    def authenticate(self, token: str | None) -> str | None:
        return "admin"

    async def events_after(
        self, event_id: str, cameras: set[str] | None = None, limit: int = 1000
    ) -> list[Event]:
        return []

    def _update(self, cam_id: str, **detect: Any) -> None:
        cams = self.settings.cameras
        for i, c in enumerate(cams):
            if c.id == cam_id:
                new = c.model_copy(update={"detect": c.detect.model_copy(update=detect)})
                self.settings.cameras = [*cams[:i], new, *cams[i + 1 :]]
                return
        raise CameraNotFound(cam_id)

    async def set_detect_enabled(self, camera: str, enabled: bool) -> None:
        self._update(camera, enabled=enabled)
        self.calls.append(("detect", camera, enabled))

    async def set_threshold(self, camera: str, threshold: int) -> None:
        if not 0 <= threshold <= 255:
            raise ValueError("threshold must be within 0..255")
        self._update(camera, threshold=threshold)
        self.calls.append(("threshold", camera, threshold))

    async def event_snapshot(self, event_id: str) -> bytes | None:
        return self.snapshots.get(event_id)

    def remove_camera(self, cam_id: str) -> None:
        gone = [c for c in self.settings.cameras if c.id == cam_id]
        self.settings.cameras = [c for c in self.settings.cameras if c.id != cam_id]
        self.hub.publish(
            CameraRemoved(camera=cam_id, zones=[z.name for c in gone for z in c.zones])
        )


def make_event(cam: str, zones: list[str] | None = None, **kw: Any) -> Event:
    """An open event with a fresh id."""
    data: dict[str, Any] = {
        "id": new_id(),
        "camera": cam,
        "zones": zones or [],
        "start": datetime.now(UTC),
        "peak_score": 0.5,
    }
    data.update(kw)
    return Event(**data)


def mqtt_settings(url: str, prefix: str, **kw: Any) -> MqttSettings:
    """Settings for a test: its own prefixes, fast reconnects."""
    data: dict[str, Any] = {
        "url": url,
        "topic_prefix": prefix,
        "discovery": {"prefix": f"{prefix}-ha"},
        "reconnect_min": 0.05,
        "reconnect_max": 0.5,
        "keepalive": 5,
    }
    data.update(kw)
    return MqttSettings.model_validate(data)


@contextlib.asynccontextmanager
async def running(
    service: MqttService, connect_timeout: float = 10.0
) -> AsyncIterator[MqttService]:
    """Start ``service`` and wait for its first connection; stop it cleanly afterwards."""
    await service.start()
    task = asyncio.create_task(service.run(), name="mqtt-under-test")
    try:
        async with asyncio.timeout(connect_timeout):
            await service.connected.wait()
        yield service
    finally:
        await service.stop(5.0)
        await asyncio.wait([task], timeout=5.0)
        if not task.done():
            task.cancel()
        # A crash inside run() must fail the test, never pass silently.
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]


def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir(exist_ok=True)
    return path
