"""The ``/ws`` route: handshake checks, authentication and one session per connection.

A connection goes through these steps, documented for clients in ``docs/websocket.md``:

1. **Origin.** A browser always sends ``Origin``; unless it is this server's own origin
   or listed in ``server.cors_origins`` the handshake is refused with HTTP 403, so a
   page on another site cannot use a visitor's network position (or a server without
   auth on loopback) to watch the cameras.
2. **Auth.** The token comes from the ``Sec-WebSocket-Protocol`` offer
   ``["motionhub", "bearer.<token>"]`` (the reply selects ``motionhub``) or from a first
   ``auth`` message within ``auth_timeout`` seconds. A wrong or missing token closes
   with 1008. Tokens never travel in the URL, where proxies and logs would keep them.
3. **Session.** ``hello``, then live messages through the client's
   :class:`~server.ws.fanout.ClientQueue`, while client messages are read
   (:mod:`server.ws.session`).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from fastapi import APIRouter, FastAPI, WebSocket
from fastapi.responses import PlainTextResponse
from pydantic import ValidationError
from starlette.types import ASGIApp, Receive, Scope
from starlette.types import Send as AsgiSend
from starlette.websockets import WebSocketDisconnect

from server.messages import AuthMessage, HelloMessage, client_message_adapter
from server.ws.fanout import (
    CLOSE_POLICY,
    CLOSE_TRY_AGAIN,
    SEND_NOW_KEY,
    CloseRequest,
    FanOut,
    FanOutLimits,
    Send,
)
from server.ws.session import Session

if TYPE_CHECKING:
    from server.config import Settings
    from server.services import Services

__all__ = ["SUBPROTOCOL", "RawSend", "WebSocketApi", "WsOptions", "origin_allowed", "router"]

log = logging.getLogger(__name__)

SUBPROTOCOL = "motionhub"
"""The subprotocol the server selects; clients offer it next to ``bearer.<token>``."""
_BEARER = "bearer."

try:
    VERSION = metadata.version("motionhub")
except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
    VERSION = "0+unknown"

router = APIRouter()

RAW_SEND_KEY = "motionhub.raw_send"


class RawSend:
    """ASGI middleware: puts the server's own ``send`` of a WebSocket connection into its
    scope, so the fan-out can skip the per-message wrappers of the exception middleware and
    of starlette's WebSocket (about a tenth of the cost of a message to a client)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: AsgiSend) -> None:
        if scope["type"] == "websocket":
            scope[RAW_SEND_KEY] = send
        await self.app(scope, receive, send)


@dataclass(frozen=True, slots=True)
class WsOptions:
    """Handshake and session settings (``server.websocket`` and ``server.cors_origins``)."""

    allowed_origins: tuple[str, ...] = ()
    auth_timeout: float = 5.0
    close_timeout: float = 5.0
    replay_limit: int = 1000


class WebSocketApi:
    """Everything ``/ws`` needs: the services, the fan-out and the options.

    Create one per app, store it as ``app.state.ws_api`` and run :meth:`run` as a
    long-lived task for the lifetime of the app.
    """

    def __init__(
        self,
        services: Services,
        options: WsOptions | None = None,
        limits: FanOutLimits | None = None,
        on_clients: Callable[[int], None] | None = None,
    ) -> None:
        self.services = services
        self.options = options or WsOptions()
        self.fanout = FanOut(services.hub, limits, on_clients)
        self._ids = itertools.count(1)

    @classmethod
    def from_settings(
        cls,
        services: Services,
        settings: Settings,
        on_clients: Callable[[int], None] | None = None,
    ) -> WebSocketApi:
        """Build from the configuration tree; ``on_clients`` hears the client count."""
        ws = settings.server.websocket
        options = WsOptions(
            allowed_origins=tuple(settings.server.cors_origins),
            auth_timeout=ws.auth_timeout,
            close_timeout=ws.close_timeout,
            replay_limit=ws.replay_limit,
        )
        limits = FanOutLimits(
            queue_size=ws.queue_size,
            slow_client_timeout=ws.slow_client_timeout,
            max_clients=ws.max_clients,
            motion_interval=ws.motion_interval,
            idle_motion_interval=ws.idle_motion_interval,
            motion_budget=ws.motion_budget,
            direct_size=ws.replay_limit + 100,
        )
        return cls(services, options, limits, on_clients)

    def install(self, app: FastAPI) -> None:
        """Serve ``/ws`` on ``app`` from this object."""
        app.state.ws_api = self
        app.include_router(router)
        app.add_middleware(RawSend)

    async def run(self) -> None:
        """Deliver hub messages to the clients until cancelled (then close them with 1001)."""
        await self.fanout.run()

    async def serve(self, websocket: WebSocket) -> None:
        """Run one connection from handshake to close."""
        headers = websocket.headers
        scheme = "https" if websocket.url.scheme == "wss" else "http"
        if not origin_allowed(
            headers.get("origin"), headers.get("host"), scheme, self.options.allowed_origins
        ):
            log.warning("ws: refused handshake from origin %r", headers.get("origin"))
            await websocket.send_denial_response(
                PlainTextResponse("origin not allowed", status_code=403)
            )
            return

        offered = websocket.scope.get("subprotocols", [])
        token = _token_from_subprotocols(offered)
        await websocket.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None)
        role = await self._authenticate(websocket, token)
        if role is None:
            return

        client_addr = websocket.client
        peer = f"{client_addr.host}:{client_addr.port}" if client_addr else "?"
        name = f"{peer}#{next(self._ids)}"
        # The server's own send, when RawSend handed it over, skips two wrappers per
        # message; starlette's WebSocket.send takes the same messages otherwise.
        send: Send = websocket.scope.get(RAW_SEND_KEY) or websocket.send
        client = self.fanout.register(name, send, send_now=websocket.scope.get(SEND_NOW_KEY))
        if client is None:
            await self._close(websocket, CloseRequest(CLOSE_TRY_AGAIN, "too many clients"))
            return
        # Registering and listing the cameras happen without an await in between, so the
        # hello is a consistent snapshot and every later change reaches this client.
        hello = HelloMessage(version=VERSION, cameras=self.services.cameras(), role=role)
        client.push_direct(hello.model_dump_json())
        log.debug("ws %s: connected as %s", name, role)
        session = Session(websocket, client, self.services, self.options.replay_limit)
        reader = asyncio.create_task(session.read(), name=f"ws-read-{name}")
        writer = asyncio.create_task(client.run(), name=f"ws-write-{name}")
        try:
            request = await client.finished
        finally:
            self.fanout.unregister(client)
            client.finish(CloseRequest(None))
            for task in (reader, writer):
                task.cancel()
            for result in await asyncio.gather(reader, writer, return_exceptions=True):
                if isinstance(result, Exception):
                    log.error("ws %s: session task failed", name, exc_info=result)
        log.debug("ws %s: finished (%s)", name, request.code)
        await self._close(websocket, request)

    async def _authenticate(self, websocket: WebSocket, token: str | None) -> str | None:
        """The client's role, or ``None`` after closing the socket with 1008."""
        services = self.services
        if token is not None:
            role = services.authenticate(token)
            if role is None:
                await self._close(websocket, CloseRequest(CLOSE_POLICY, "invalid token"))
            return role
        role = services.authenticate(None)
        if role is not None:
            return role
        try:
            message = await asyncio.wait_for(websocket.receive(), self.options.auth_timeout)
        except TimeoutError:
            await self._close(websocket, CloseRequest(CLOSE_POLICY, "authentication timed out"))
            return None
        if message["type"] == "websocket.disconnect":
            return None
        try:
            first = client_message_adapter.validate_json(message.get("text") or b"")
        except ValidationError:
            first = None
        if not isinstance(first, AuthMessage):
            await self._close(websocket, CloseRequest(CLOSE_POLICY, "authentication required"))
            return None
        role = services.authenticate(first.token)
        if role is None:
            await self._close(websocket, CloseRequest(CLOSE_POLICY, "invalid token"))
        return role

    async def _close(self, websocket: WebSocket, request: CloseRequest) -> None:
        """Send the close frame, giving up after ``close_timeout`` (a peer that stopped
        reading never drains it; uvicorn then drops the socket once its buffer empties)."""
        if request.code is None:
            return
        try:
            await asyncio.wait_for(
                websocket.close(request.code, request.reason), self.options.close_timeout
            )
        except TimeoutError:
            log.info("ws: close frame %d not delivered in time", request.code)
        except (WebSocketDisconnect, RuntimeError, OSError):
            # Already closed by the peer, or the transport is gone: nothing left to say.
            pass


@router.get("/ws", include_in_schema=False)
async def websocket_over_http() -> PlainTextResponse:
    """A plain HTTP request for the live feed (a browser tab, curl): say what it is."""
    return PlainTextResponse(
        "/ws is motionhub's WebSocket live feed: connect with a WebSocket client "
        "(see docs/websocket.md)\n",
        status_code=426,
        headers={"Upgrade": "websocket", "Connection": "Upgrade"},
    )


@router.websocket("/ws")
async def websocket_endpoint(websocket: WebSocket) -> None:
    """The live feed; see ``docs/websocket.md``."""
    api: WebSocketApi | None = getattr(websocket.app.state, "ws_api", None)
    if api is None:
        await websocket.send_denial_response(
            PlainTextResponse("live feed not running", status_code=503)
        )
        return
    await api.serve(websocket)


def _token_from_subprotocols(offered: Sequence[str]) -> str | None:
    for item in offered:
        if item.startswith(_BEARER) and len(item) > len(_BEARER):
            return item[len(_BEARER) :]
    return None


_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def _host_port(netloc: str, scheme: str) -> tuple[str, int] | None:
    try:
        parts = urlsplit(f"//{netloc}")
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname:
        return None
    return parts.hostname.lower(), port or _DEFAULT_PORTS.get(scheme, 80)


def origin_allowed(
    origin: str | None, host: str | None, scheme: str, allowed: Sequence[str]
) -> bool:
    """Whether a handshake with this ``Origin`` may proceed.

    No ``Origin`` means a non-browser client, which cannot be abused cross-site. A browser
    origin passes when it matches the ``Host`` the request was sent to (same origin) or an
    entry of ``allowed`` (``"*"`` allows any).
    """
    if origin is None:
        return True
    if "*" in allowed:
        return True
    normal = origin.strip().rstrip("/").lower()
    if normal in {a.strip().rstrip("/").lower() for a in allowed}:
        return True
    try:
        parts = urlsplit(normal)
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or host is None:
        return False
    mine = _host_port(host, scheme)
    theirs = _host_port(parts.netloc, parts.scheme)
    return mine is not None and mine == theirs
