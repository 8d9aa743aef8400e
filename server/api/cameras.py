"""``/api/cameras``: list, create, read, change and delete cameras; snapshots and live MJPEG."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from pydantic import ValidationError

from server.api.deps import (
    ADMIN_ERRORS,
    BODY_ERRORS,
    VIEWER_ERRORS,
    Responses,
    core_of,
    not_found,
)
from server.api.models import CameraList, CameraOut, CameraPatch, ErrorBody
from server.auth import AuthFirstRoute, require_admin, require_viewer
from server.config import CameraSettings
from server.core import CameraConflict, CameraRefused, Core, TooManyCameras
from server.services import CameraNotFound

__all__ = ["router"]

router = APIRouter(prefix="/api/cameras", tags=["cameras"], route_class=AuthFirstRoute)

CameraIdPath = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$", description="Camera id.")]
CoreDep = Annotated[Core, Depends(core_of)]
MAX_STREAM_FPS = 15.0
_JPEG: Responses = {200: {"content": {"image/jpeg": {}}, "description": "A JPEG image."}}
_NOT_FOUND: Responses = {404: {"model": ErrorBody, "description": "No such camera."}}
_NO_FRAME: Responses = {503: {"model": ErrorBody, "description": "The camera has no frame yet."}}


def camera_out(core: Core, camera_id: str) -> CameraOut:
    """The API view of one camera."""
    cs = core.camera(camera_id)
    st = core.status(camera_id)
    p = core.pipeline(camera_id)
    return CameraOut.build(
        cs,
        st,
        motion=p.motion if p else False,
        event_active=p.tracker.active if p else False,
    )


def _found(core: Core, camera_id: str) -> None:
    try:
        core.camera(camera_id)
    except CameraNotFound as exc:
        raise not_found(str(exc)) from None


@router.get("", dependencies=[require_viewer], responses=VIEWER_ERRORS)
async def list_cameras(core: CoreDep) -> CameraList:
    """Every camera with its live status."""
    return CameraList(cameras=[camera_out(core, c) for c in core.camera_ids()])


@router.post(
    "",
    status_code=201,
    dependencies=[require_admin],
    responses={
        **ADMIN_ERRORS,
        **BODY_ERRORS,
        409: {"model": ErrorBody, "description": "The id is taken."},
    },
)
async def create_camera(camera: CameraSettings, core: CoreDep) -> CameraOut:
    """Add a camera; it starts at once and is kept across restarts."""
    try:
        await core.add_camera(camera)
    except CameraConflict as exc:
        raise HTTPException(409, str(exc)) from None
    except TooManyCameras as exc:
        raise RequestValidationError(
            [{"loc": ("body",), "msg": str(exc), "type": "too_many_cameras"}]
        ) from None
    except CameraRefused as exc:
        raise _refused(exc) from None
    return camera_out(core, camera.id)


def _refused(exc: CameraRefused) -> RequestValidationError:
    return RequestValidationError(
        [{"loc": ("body", exc.field), "msg": exc.reason, "type": "source_refused"}]
    )


@router.get(
    "/{camera_id}", dependencies=[require_viewer], responses={**VIEWER_ERRORS, **_NOT_FOUND}
)
async def get_camera(camera_id: CameraIdPath, core: CoreDep) -> CameraOut:
    """One camera with its live status."""
    _found(core, camera_id)
    return camera_out(core, camera_id)


@router.patch(
    "/{camera_id}",
    dependencies=[require_admin],
    responses={**ADMIN_ERRORS, **BODY_ERRORS, **_NOT_FOUND},
)
async def update_camera(camera_id: CameraIdPath, patch: CameraPatch, core: CoreDep) -> CameraOut:
    """Change a camera live: detection, zones and masks apply to the next frame; a new source
    reconnects. Kept across restarts."""
    _found(core, camera_id)
    changes = patch.model_dump(exclude_unset=True)
    if changes.pop("id", None) not in (None, camera_id):
        raise RequestValidationError(
            [
                {
                    "loc": ("body", "id"),
                    "msg": f"a camera's id cannot change: send {camera_id!r} or no id",
                    "type": "id_mismatch",
                }
            ]
        )
    try:
        await core.update_camera(camera_id, changes)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        ) from None
    except CameraNotFound as exc:
        raise not_found(str(exc)) from None
    except CameraRefused as exc:
        raise _refused(exc) from None
    return camera_out(core, camera_id)


@router.delete(
    "/{camera_id}",
    status_code=204,
    dependencies=[require_admin],
    responses={**ADMIN_ERRORS, **_NOT_FOUND},
)
async def delete_camera(camera_id: CameraIdPath, core: CoreDep) -> Response:
    """Stop and delete a camera. Its stored events stay."""
    try:
        await core.remove_camera(camera_id)
    except CameraNotFound as exc:
        raise not_found(str(exc)) from None
    return Response(status_code=204)


@router.get(
    "/{camera_id}/snapshot.jpg",
    dependencies=[require_viewer],
    response_class=Response,
    responses={**_JPEG, **VIEWER_ERRORS, **_NOT_FOUND, **_NO_FRAME},
)
async def camera_snapshot(
    camera_id: CameraIdPath,
    core: CoreDep,
    boxes: Annotated[bool, Query(description="Draw motion boxes, zones and masks.")] = False,
) -> Response:
    """The camera's newest frame as JPEG."""
    _found(core, camera_id)
    pipeline = core.pipeline(camera_id)
    data = await pipeline.live.jpeg(boxes=boxes, max_age=0.1) if pipeline else None
    if data is None:
        raise HTTPException(503, "the camera has no frame yet")
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


@router.get(
    "/{camera_id}/stream.mjpeg",
    dependencies=[require_viewer],
    response_class=StreamingResponse,
    responses={
        200: {"content": {"multipart/x-mixed-replace": {}}, "description": "MJPEG stream."},
        **VIEWER_ERRORS,
        **_NOT_FOUND,
    },
)
async def camera_stream(
    camera_id: CameraIdPath,
    core: CoreDep,
    fps: Annotated[float, Query(gt=0, le=MAX_STREAM_FPS, description="Frames per second.")] = 5.0,
    boxes: Annotated[bool, Query(description="Draw motion boxes and zones.")] = False,
) -> StreamingResponse:
    """A live multipart MJPEG view at up to ``fps`` frames per second. Encoding is shared
    between viewers and runs off the event loop, so viewers never slow detection."""
    _found(core, camera_id)
    return StreamingResponse(
        _mjpeg(core, camera_id, fps, boxes),
        media_type="multipart/x-mixed-replace; boundary=frame",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _mjpeg(core: Core, camera_id: str, fps: float, boxes: bool) -> AsyncIterator[bytes]:
    interval = 1.0 / fps
    while core.running and not core.should_exit():
        started = time.monotonic()
        try:
            pipeline = core.pipeline(camera_id)
        except CameraNotFound:
            return
        data = await pipeline.live.jpeg(boxes=boxes, max_age=interval * 0.9) if pipeline else None
        if data is not None:
            head = f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n\r\n"
            yield head.encode() + data + b"\r\n"
        await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))
