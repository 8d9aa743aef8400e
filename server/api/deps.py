"""Shared route plumbing: the core object and common error responses."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException, Request

from server.api.models import ErrorBody
from server.core import Core

__all__ = ["ADMIN_ERRORS", "BODY_ERRORS", "VIEWER_ERRORS", "Responses", "core_of", "not_found"]

Responses = dict[int | str, dict[str, Any]]
"""The ``responses=`` argument of a route."""

VIEWER_ERRORS: Responses = {
    401: {"model": ErrorBody, "description": "Missing or invalid token."},
}
ADMIN_ERRORS: Responses = {
    **VIEWER_ERRORS,
    403: {"model": ErrorBody, "description": "The token is not an admin token."},
}
BODY_ERRORS: Responses = {
    400: {"model": ErrorBody, "description": "The JSON body is nested too deeply."},
    413: {"model": ErrorBody, "description": "The body is larger than server.max_body_bytes."},
}
"""Extra answers of a route that takes a JSON body."""


def core_of(request: Request) -> Core:
    """The app's :class:`Core`."""
    core: Core = request.app.state.core
    return core


def not_found(what: str) -> HTTPException:
    """A JSON 404."""
    return HTTPException(status_code=404, detail=what)
