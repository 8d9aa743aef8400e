"""``HEAD`` for every ``GET`` route, in one place.

FastAPI's routes answer only the methods they declare, so ``HEAD`` (``curl -I``, uptime
monitors) got 405 everywhere a route says ``GET``. :class:`HeadAsGet` serves a ``HEAD``
request as the ``GET`` it stands for, with the same status and headers, and ends the answer
right after its headers: no body is sent, and a live stream stops at once instead of
running with nobody reading it.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["HeadAsGet"]


class HeadAsGet:
    """ASGI middleware: answer ``HEAD`` as ``GET`` without the body, and list ``HEAD``
    next to ``GET`` in the ``Allow`` header of a 405."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] != "HEAD":
            await self.app(scope, receive, _allow_head(send))
            return
        done = False

        async def send_head(message: Message) -> None:
            nonlocal done
            if done:
                return  # the body (or the rest of a stream): not for a HEAD request
            if message["type"] == "http.response.start":
                await _allow_head(send)(message)
                # Ending the answer here makes the server's receive() report the client
                # gone, which stops a streaming response.
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                done = True

        await self.app({**scope, "method": "GET"}, receive, send_head)


def _allow_head(send: Send) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start" and message["status"] == 405:
            headers = MutableHeaders(scope=message)
            methods = [m.strip() for m in headers.get("allow", "").split(",") if m.strip()]
            if "GET" in methods and "HEAD" not in methods:
                headers["allow"] = ", ".join([*methods, "HEAD"])
        await send(message)

    return wrapped
