"""``/api/events``: stored motion events, filtered and paged, and their snapshots."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response
from pydantic import ValidationError, ValidatorFunctionWrapHandler, WrapValidator

from server.api.deps import ADMIN_ERRORS, VIEWER_ERRORS, Responses, core_of, not_found
from server.api.models import ErrorBody, EventPage
from server.auth import AuthFirstRoute, require_admin, require_viewer
from server.core import Core
from server.ids import ULID_PATTERN
from server.messages import Event
from server.storage import EventQuery, StorageError

__all__ = ["router"]

router = APIRouter(prefix="/api/events", tags=["events"], route_class=AuthFirstRoute)

EventIdPath = Annotated[str, Path(pattern=ULID_PATTERN, description="Event id (ULID).")]
CoreDep = Annotated[Core, Depends(core_of)]


def _api_time(value: object, handler: ValidatorFunctionWrapHandler) -> datetime:
    try:
        when = handler(value)
    except ValidationError:
        raise ValueError(
            "not a time: give ISO 8601 (2026-11-24T08:00:00Z; UTC if no offset) or Unix seconds"
        ) from None
    assert isinstance(when, datetime)
    return when


ApiTime = Annotated[datetime, WrapValidator(_api_time)]
"""A query time; a bad one gets one message naming both accepted forms."""
_NOT_FOUND: Responses = {404: {"model": ErrorBody, "description": "No such event."}}


@router.get("", dependencies=[require_viewer], responses=VIEWER_ERRORS)
async def list_events(
    *,
    core: CoreDep,
    camera: Annotated[str | None, Query(max_length=64, description="Only this camera.")] = None,
    zone: Annotated[
        str | None, Query(max_length=64, description="Only events that entered this zone.")
    ] = None,
    since: Annotated[
        ApiTime | None,
        Query(description="Started at or after (ISO 8601, UTC if no offset, or Unix seconds)."),
    ] = None,
    until: Annotated[ApiTime | None, Query(description="Started before.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Page size.")] = 50,
    cursor: Annotated[
        str | None, Query(pattern=ULID_PATTERN, description="next_cursor of the previous page.")
    ] = None,
) -> EventPage:
    """Events, newest first, one page at a time."""
    events = await core.storage.list_events(
        EventQuery(
            # Empty, as a form's "all" choice sends it, is no filter (no id is empty).
            camera=camera or None,
            zone=zone or None,
            since=_unix(since),
            until=_unix(until),
            before=cursor,
            limit=limit,
        )
    )
    next_cursor = events[-1].id if len(events) == limit else None
    return EventPage(events=events, next_cursor=next_cursor)


def _unix(when: datetime | None) -> float | None:
    # A time without an offset is taken as UTC, like every time the API returns.
    if when is None:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


@router.get("/{event_id}", dependencies=[require_viewer], responses={**VIEWER_ERRORS, **_NOT_FOUND})
async def get_event(event_id: EventIdPath, core: CoreDep) -> Event:
    """One event."""
    event = await core.storage.get_event(event_id)
    if event is None:
        raise not_found(f"no event with id {event_id!r}")
    return event


@router.delete(
    "/{event_id}",
    status_code=204,
    dependencies=[require_admin],
    responses={
        **ADMIN_ERRORS,
        **_NOT_FOUND,
        409: {"model": ErrorBody, "description": "The event is still open."},
    },
)
async def delete_event(event_id: EventIdPath, core: CoreDep) -> Response:
    """Delete an event and its snapshots; WebSocket clients of its camera get
    ``event_deleted``."""
    event = await core.storage.get_event(event_id)
    if event is None:
        raise not_found(f"no event with id {event_id!r}")
    if event.end is None:
        raise HTTPException(409, "the event is still open; delete it once it has ended")
    await core.storage.delete_event(event_id)  # announced as event_deleted by the core
    return Response(status_code=204)


@router.get(
    "/{event_id}/snapshot.jpg",
    dependencies=[require_viewer],
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {}}, "description": "A JPEG image."},
        **VIEWER_ERRORS,
        404: {"model": ErrorBody, "description": "No such event, or it has no snapshot."},
        503: {"model": ErrorBody, "description": "The snapshot directory cannot be read."},
    },
)
async def event_snapshot(
    event_id: EventIdPath,
    core: CoreDep,
    kind: Annotated[
        Literal["best", "start", "peak"],
        Query(description="best: the peak frame if stored, else the start frame."),
    ] = "best",
) -> Response:
    """An event's snapshot with its motion boxes drawn."""
    event = await core.storage.get_event(event_id)
    if event is None:
        raise not_found(f"no event with id {event_id!r}")
    try:
        data = await core.storage.read_snapshot(event, None if kind == "best" else kind)
    except StorageError as exc:
        raise HTTPException(503, str(exc)) from exc
    if data is None:
        raise not_found(f"no snapshot for event {event_id!r}")
    # While the event is open a better peak frame may replace the snapshot: no reuse
    # without asking again. Once it has ended the snapshot no longer changes.
    cache = "no-cache" if event.end is None else "max-age=86400"
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": cache})
