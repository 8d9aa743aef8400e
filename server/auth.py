"""Bearer-token roles for the REST API (and the WebSocket, through :class:`TokenAuth`).

Two roles: ``admin`` may change cameras and settings, ``viewer`` may only read. Every
route declares its role with one of the dependencies below; :func:`route_role` reads that
back from the route, which is how the auth-matrix test covers every route the app has.
With no token configured, every caller is ``admin`` and the server binds to loopback only.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Literal

from fastapi import Depends, Request, Response
from fastapi.routing import APIRoute, RouteContext
from starlette.routing import BaseRoute

from server.config import AuthToken

__all__ = [
    "AuthFailed",
    "AuthFirstRoute",
    "Role",
    "TokenAuth",
    "bearer_token",
    "require_admin",
    "require_viewer",
    "route_role",
]

Role = Literal["admin", "viewer"]
_RANK: dict[str, int] = {"viewer": 1, "admin": 2}


class AuthFailed(Exception):
    """Missing/wrong token (401) or a role too low for the route (403)."""

    def __init__(self, status: Literal[401, 403], detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class TokenAuth:
    """The configured tokens; checks a presented token in constant time."""

    def __init__(self, tokens: Sequence[AuthToken]) -> None:
        self._tokens = [(t.token.get_secret_value().encode(), t.role) for t in tokens]

    @property
    def enabled(self) -> bool:
        """Whether any token is configured."""
        return bool(self._tokens)

    def role_of(self, token: str | None) -> Role | None:
        """The role ``token`` grants: ``admin`` when auth is off, ``None`` when it is wrong."""
        if not self._tokens:
            return "admin"
        if not token:
            return None
        presented = token.encode()
        found: Role | None = None
        # Compare against every token (no early exit) so timing does not reveal which matched.
        for secret, role in self._tokens:
            if hmac.compare_digest(presented, secret) and found is None:
                found = role
        return found


def bearer_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, if any."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def _checker(needed: Role) -> Callable[[Request], Role]:
    def check(request: Request) -> Role:
        auth: TokenAuth = request.app.state.auth
        role = auth.role_of(bearer_token(request))
        if role is None:
            raise AuthFailed(401, "missing or invalid bearer token")
        if _RANK[role] < _RANK[needed]:
            raise AuthFailed(403, f"this needs the {needed} role")
        return role

    check.__name__ = f"require_{needed}"
    return check


_require_viewer = _checker("viewer")
_require_admin = _checker("admin")
require_viewer = Depends(_require_viewer)
"""Route dependency: any valid token."""
require_admin = Depends(_require_admin)
"""Route dependency: an admin token."""


def route_role(route: BaseRoute | RouteContext) -> Role | None:
    """The role a route requires, read from its dependencies; ``None`` for public routes.

    Takes a route or a :class:`fastapi.routing.RouteContext` (what
    ``fastapi.routing.iter_route_contexts(app.routes)`` yields for included routers).
    """
    original = route.original_route if isinstance(route, RouteContext) else route
    if not isinstance(original, APIRoute):
        return None
    dependant = getattr(route, "dependant", original.dependant)
    calls = {dep.call for dep in dependant.dependencies}
    if _require_admin in calls:
        return "admin"
    if _require_viewer in calls:
        return "viewer"
    return None


class AuthFirstRoute(APIRoute):
    """A route that checks its role before anything reads the request.

    FastAPI reads and decodes a JSON body before it runs a route's dependencies, so without
    this a caller with no token could make the server read and parse a body, and learn from
    a 422 how it parses. Here the role the route declares (``require_admin`` or
    ``require_viewer``) is checked first and a refused caller gets its 401/403 with the body
    unread. The dependency stays on the route, where the OpenAPI schema and
    :func:`route_role` find it; it runs again after the body and passes.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        role = route_role(self)
        if role is None:
            return handler
        check = _require_admin if role == "admin" else _require_viewer

        async def checked(request: Request) -> Response:
            check(request)
            return await handler(request)

        return checked
