"""``HEAD`` for every ``GET`` route, in one place.

FastAPI's routes answer only the methods they declare, so ``HEAD`` (``curl -I``, uptime
monitors) got 405 everywhere a route says ``GET``. :class:`HeadAsGet` serves a ``HEAD``
request as the ``GET`` it stands for, with the same status and headers, and ends the answer
right after its headers: no body is sent, and a live stream stops at once instead of
running with nobody reading it.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.routing import BaseRoute, Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["HeadAsGet"]


class HeadAsGet:
    """ASGI middleware: answer ``HEAD`` as ``GET`` without the body, and make the ``Allow``
    header of a 405 list every method the path takes, ``HEAD`` next to ``GET``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] != "HEAD":
            await self.app(scope, receive, _allow_head(scope, send))
            return
        done = False

        async def send_head(message: Message) -> None:
            nonlocal done
            if done:
                return  # the body (or the rest of a stream): not for a HEAD request
            if message["type"] == "http.response.start":
                await _allow_head(scope, send)(message)
                # Ending the answer here makes the server's receive() report the client
                # gone, which stops a streaming response.
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                done = True

        await self.app({**scope, "method": "GET"}, receive, send_head)


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
"""The methods a route may declare, in the order ``Allow`` lists them."""


def _allowed(scope: Scope, methods: list[str]) -> list[str]:
    """Every method some route of the app accepts on this path, ``HEAD`` with ``GET``.

    Starlette's 405 lists only the methods of the first route whose path matches, but one
    path is often several routes (``GET`` and ``POST`` on ``/api/cameras``). RFC 9110 asks
    for all of them, so every route is asked whether it would take each method. Mounts are
    left out: they take every method and answer for themselves.
    """
    routes: list[BaseRoute] = list(getattr(scope.get("app"), "routes", ()))
    candidates = [*_METHODS, *sorted(set(methods) - set(_METHODS))]
    found = set(methods)
    for method in candidates:
        probe = {**scope, "method": method}
        if any(
            not isinstance(route, Mount) and route.matches(probe)[0] == Match.FULL
            for route in routes
        ):
            found.add(method)
    if "GET" in found:
        found.add("HEAD")
    return [m for m in candidates if m in found]


def _allow_head(scope: Scope, send: Send) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start" and message["status"] == 405:
            headers = MutableHeaders(scope=message)
            methods = [m.strip() for m in headers.get("allow", "").split(",") if m.strip()]
            if methods:
                headers["allow"] = ", ".join(_allowed(scope, methods))
        await send(message)

    return wrapped
