"""The WebSocket API: ``/ws`` and the fan-out that feeds it (see ``docs/websocket.md``).

Wiring, in the app factory and its lifespan::

    ws_api = WebSocketApi.from_settings(services, settings)
    ws_api.install(app)                      # the /ws route and its middleware
    tg.create_task(ws_api.run(), name="websocket")

and wherever uvicorn serves the app::

    uvicorn.Config(app, ..., **uvicorn_options(settings.server.websocket))
"""

from __future__ import annotations

from server.ws.endpoint import (
    SUBPROTOCOL,
    RawSend,
    WebSocketApi,
    WsOptions,
    origin_allowed,
    router,
)
from server.ws.fanout import ClientQueue, CloseRequest, FanOut, FanOutLimits
from server.ws.protocol import uvicorn_options, websocket_protocol
from server.ws.session import parse_client_message

__all__ = [
    "SUBPROTOCOL",
    "ClientQueue",
    "CloseRequest",
    "FanOut",
    "FanOutLimits",
    "RawSend",
    "WebSocketApi",
    "WsOptions",
    "origin_allowed",
    "parse_client_message",
    "router",
    "uvicorn_options",
    "websocket_protocol",
]
