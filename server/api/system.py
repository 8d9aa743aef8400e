"""Operations: liveness, readiness, metrics and a status overview."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse

from server.api.deps import VIEWER_ERRORS, core_of
from server.api.models import Health, Readiness, StorageStatus, SystemStatus
from server.auth import AuthFirstRoute, require_viewer
from server.core import Core
from server.metrics import CONTENT_TYPE
from server.version import VERSION

__all__ = ["router"]

router = APIRouter(tags=["system"], route_class=AuthFirstRoute)
CoreDep = Annotated[Core, Depends(core_of)]


@router.get("/healthz")
async def healthz() -> Health:
    """The process is alive and serving requests."""
    return Health()


@router.get(
    "/readyz",
    responses={503: {"model": Readiness, "description": "Not ready; the fields say why."}},
)
async def readyz(core: CoreDep) -> Readiness:
    """Ready when every camera supervisor runs, storage is writable and, when MQTT is
    configured, the broker is connected. Storage health is the storage task's last check
    (at most a few seconds old), so polling this often does not touch the disk."""
    cameras = core.running and core.pipelines_running()
    storage = core.running and await core.storage.ready()
    mqtt = core.metrics.is_mqtt_connected if core.settings.mqtt is not None else None
    ready = cameras and storage and mqtt is not False
    body = Readiness(ready=ready, cameras=cameras, storage=storage, mqtt=mqtt)
    if not ready:
        return JSONResponse(body.model_dump(), status_code=503)  # type: ignore[return-value]
    return body


@router.get(
    "/metrics",
    dependencies=[require_viewer],
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text."},
        **VIEWER_ERRORS,
    },
)
async def metrics(core: CoreDep) -> Response:
    """Prometheus metrics."""
    return Response(core.metrics.render(), media_type=CONTENT_TYPE)


@router.get("/api/status", dependencies=[require_viewer], responses=VIEWER_ERRORS, tags=["system"])
async def status(core: CoreDep) -> SystemStatus:
    """An overview: cameras, clients, MQTT and storage health (with the last storage error)."""
    stats = core.stats()
    st = core.storage
    return SystemStatus(
        version=VERSION,
        uptime=stats.uptime,
        auth=core.auth.enabled,
        cameras_total=stats.cameras_total,
        cameras_online=stats.cameras_online,
        websocket_clients=stats.clients,
        mqtt=core.metrics.is_mqtt_connected if core.settings.mqtt is not None else None,
        mqtt_error=core.metrics.mqtt_error,  # only the MQTT service reports one
        storage=StorageStatus(
            writable=st.writable,
            db_error=st.db_error,
            snapshot_error=st.snapshot_error,
            events=core.events_total,
            unsaved_events=st.unsaved_events,
            lost_events=st.lost_events,
        ),
    )
