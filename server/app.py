"""The FastAPI app: factory, lifespan, and ``run`` for ``motionhub serve``.

One lifespan owns every long-lived task in one ``asyncio.TaskGroup``, each with a name:

start order                      stop order (reverse, each step bounded)
1. storage (retention)           1. cameras: pipelines cancelled, open events closed as
2. front ends (WebSocket            ``interrupted`` and announced, readers stopped
   fan-out, MQTT link)           2. stats
3. stats                         3. front ends: cancelled once the last event messages are
4. cameras (one task each)          in their queues / the MQTT outbox
                                 4. storage: every queued write flushed, database closed

The front ends start before the cameras so they see the first message, and stop after
them so they see the last.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, Final

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.api import build_router
from server.auth import AuthFailed
from server.backoff import Backoff
from server.config import Settings
from server.core import Core
from server.dashboard import mount_dashboard
from server.head import HeadAsGet
from server.http_protocol import http_protocol
from server.logs import setup_logging
from server.messages import EventEndMessage
from server.redact import redact_text, secrets
from server.storage import StorageError
from server.validation_text import plain_message
from server.version import VERSION
from server.ws import WebSocketApi, uvicorn_options

__all__ = ["FrontEnd", "StartupError", "create_app", "listen_socket", "run"]

log = logging.getLogger(__name__)

FrontEnd = tuple[str, Callable[[], Coroutine[Any, Any, None]]]
"""A front end's long-lived task: ``(name, factory of its run() coroutine)``."""

STOP_STEP_TIMEOUT = 5.0
"""Seconds each shutdown step may take before its tasks are cancelled."""
GRACEFUL_HTTP_TIMEOUT = 3
"""Seconds uvicorn waits for open requests (live streams, WebSockets) on shutdown."""


def create_app(settings: Settings) -> FastAPI:
    """A new, independent app for ``settings`` (nothing is shared between apps)."""
    core = Core(settings)
    app = FastAPI(
        title="motionhub",
        version=VERSION,
        summary="Real-time motion detection for IP cameras.",
        lifespan=_lifespan,
        docs_url="/docs",
        redoc_url="/redoc",
    )
    app.state.core = core
    app.state.services = core
    app.state.hub = core.hub
    app.state.metrics = core.metrics
    app.state.auth = core.auth
    app.state.settings = settings
    app.include_router(build_router())
    app.add_exception_handler(AuthFailed, _auth_failed)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _invalid)  # type: ignore[arg-type]
    if settings.server.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.server.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(BodyLimit, max_bytes=settings.server.max_body_bytes)

    # ---- FRONT ENDS --------------------------------------------------------------------------
    # WebSocket, dashboard and MQTT wire in here: include routers / mount static files on
    # ``app``, and append ``(name, factory)`` to ``frontends`` for each long-lived task. The
    # lifespan starts them after storage and before the cameras, and cancels them (bounded)
    # after the cameras have closed their events. They reach the core through
    # ``app.state.services`` and report through ``core.metrics.set_websocket_clients`` and
    # ``core.metrics.set_mqtt_connected``.
    #
    # The hub hands a message to its subscribers in the order they subscribed, which is this
    # list's order. MQTT comes first: its event publish is one small write started from the
    # hand-over, which would otherwise wait behind the first chunk of the WebSocket send pass
    # (one loop callback writing to up to ``flush_chunk`` clients).
    frontends: list[FrontEnd] = []
    if settings.mqtt is not None:
        from server.mqtt import MqttCollector, MqttService

        mqtt = MqttService(
            core,
            settings.mqtt,
            settings.storage.path,
            on_connected=core.metrics.set_mqtt_connected,
            on_error=core.metrics.set_mqtt_error,
        )
        core.metrics.registry.register(MqttCollector(mqtt))
        app.state.mqtt = mqtt
        frontends.append(("mqtt", mqtt.serve))
    ws_api = WebSocketApi.from_settings(core, settings, core.metrics.set_websocket_clients)
    ws_api.install(app)
    frontends.append(("websocket", ws_api.run))
    mount_dashboard(app)
    # ---- END FRONT ENDS ----------------------------------------------------------------------
    # Outermost, so that every route (API, dashboard, static files) and every header the
    # other middleware adds answers HEAD as it answers GET.
    app.add_middleware(HeadAsGet)
    app.state.frontends = frontends
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    core: Core = app.state.core
    frontends: list[FrontEnd] = app.state.frontends
    abort: Callable[[], None] | None = getattr(app.state, "abort", None)
    try:
        interrupted = await core.storage.open()
    except StorageError as exc:
        if abort is None:
            raise
        # One line naming the cause (a database file that is not one, a disk that refuses
        # it), then a clean exit: nothing else has started.
        log.error("%s", exc)
        app.state.startup_error = exc
        abort()
        yield
        return
    async with asyncio.TaskGroup() as tg:
        if interrupted:
            log.warning("closed %d event(s) left open by an unclean stop", len(interrupted))
        storage_task = tg.create_task(_supervised("storage", core.storage.run), name="storage")
        front_tasks = [
            tg.create_task(_supervised(name, factory), name=name) for name, factory in frontends
        ]
        await asyncio.sleep(0)  # let the front ends subscribe to the hub before cameras publish
        for event in interrupted:
            # Their start was announced before the stop; so is their end now (MQTT keeps it
            # in its outbox until the broker has it).
            core.hub.publish(EventEndMessage(event=event))
        stats_task = tg.create_task(_supervised("stats", core.stats_loop), name="stats")
        await core.start(tg)
        log.info("motionhub %s ready", VERSION)
        try:
            yield
        finally:
            log.info("shutting down")
            await core.stop(STOP_STEP_TIMEOUT)
            await _cancel([stats_task])
            await _cancel(front_tasks)
            await _cancel([storage_task])
            await asyncio.wait_for(core.storage.close(), STOP_STEP_TIMEOUT)
            log.info("stopped")


STABLE_SECONDS: Final = 60.0
"""A long-lived task that ran this long before it failed starts again after the shortest
delay, as on its first failure."""


async def _supervised(
    name: str, factory: Callable[[], Awaitable[None]], backoff: Backoff | None = None
) -> None:
    """Run a long-lived task (a front end, the storage upkeep, the statistics) until
    cancelled. A failure is logged and the task starts again after a delay that grows with
    each failure in a row (1 s to 30 s, jittered, as camera reconnects do): it never cancels
    the cameras, and it never stays dead."""
    backoff = backoff or Backoff(first=1.0, cap=30.0)
    while True:
        started = time.monotonic()
        try:
            await factory()
            return
        except Exception:
            delay = backoff.next_after(time.monotonic() - started, STABLE_SECONDS)
            log.exception("task %s failed; starting it again in %.1f s", name, delay)
        await asyncio.sleep(delay)


async def _cancel(tasks: list[asyncio.Task[None]], grace: float = STOP_STEP_TIMEOUT) -> None:
    for task in tasks:
        task.cancel()
    if tasks:
        _, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            log.error("task %s did not stop within %.0f s", task.get_name(), grace)


async def _auth_failed(request: Request, exc: AuthFailed) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=headers)


def _sent_as(request: Request, exc: RequestValidationError) -> str | None:
    """The media type of a body sent as something other than JSON that the route could not
    take because of it (the whole body refused), else None."""
    header = request.headers.get("content-type")
    if header is None:
        return None  # FastAPI reads a body without a type as JSON
    media = header.split(";", 1)[0].strip().lower()
    if media == "application/json" or media.endswith("+json"):
        return None
    if not any(tuple(e.get("loc", ())) == ("body",) for e in exc.errors()):
        return None
    return media[:100]


async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    media = _sent_as(request, exc)
    if media is not None:
        why = f"send the body as JSON with Content-Type: application/json (got {media!r})"
        return JSONResponse({"detail": why}, status_code=415)
    # pydantic puts the rejected input (a camera URL with its password, say) in "input" and
    # "ctx"; only the location, message and type go back.
    detail = [
        {
            "loc": list(e.get("loc", ())),
            "msg": redact_text(plain_message(e.get("msg", ""))),
            "type": e.get("type", ""),
        }
        for e in exc.errors()
    ]
    return JSONResponse({"detail": detail}, status_code=422)


# A client that sends its body without waiting (no ``Expect: 100-continue``) reads no answer
# before it has written all of it, and a server that closes with body bytes unread makes the
# kernel reset the connection: the client sees a reset instead of the 413. So a refused body
# is read and thrown away first, up to this much and this long (what a lingering close does).
DRAIN_BYTES: Final = 16 << 20
DRAIN_SECONDS: Final = 5.0


async def _drain(receive: Receive, budget: int) -> None:
    """Read and discard the rest of a request body, at most ``budget`` bytes or
    :data:`DRAIN_SECONDS`."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(DRAIN_SECONDS):
            while budget > 0:
                message = await receive()
                if message["type"] != "http.request" or not message.get("more_body", False):
                    return
                budget -= len(message.get("body", b""))


class BodyLimit:
    """Refuse request bodies larger than ``max_bytes`` with a JSON 413."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = 0
        expects_continue = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                with contextlib.suppress(ValueError):
                    length = int(value)
            elif name == b"expect":
                expects_continue = value.lower() == b"100-continue"
        if length > self.max_bytes:
            # A client waiting for "100 Continue" sends nothing more; any other one is
            # writing the body now, and gets its answer once that is read.
            if not expects_continue and length <= DRAIN_BYTES:
                await _drain(receive, length)
            await self._refuse(send)
            return
        seen = 0
        started = False
        refused = False

        async def limited_receive() -> Message:
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    # Answer 413 now and tell the app the client went away. (Raising here
                    # would reach the app's body parser, which turns any error into a 400.)
                    refused = True
                    if not started:
                        if message.get("more_body", False):
                            await _drain(receive, DRAIN_BYTES - seen)
                        await self._refuse(send)
                    return {"type": "http.disconnect"}
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 has been sent; whatever the app says now goes nowhere
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except ClientDisconnect:
            if not refused:
                raise

    async def _refuse(self, send: Send) -> None:
        body = json.dumps({"detail": f"request body larger than {self.max_bytes} bytes"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(host).is_loopback
    return False


def bind_host(settings: Settings) -> str:
    """The address to listen on: loopback only unless API tokens are configured."""
    host = settings.server.host
    if settings.server.auth.tokens:
        return host
    if not _is_loopback(host):
        log.warning(
            "no auth tokens configured: listening on 127.0.0.1 instead of %s "
            "(add server.auth.tokens to serve other machines)",
            host,
        )
        host = "127.0.0.1"
    log.warning("no auth tokens configured: the API is unauthenticated (loopback only)")
    return host


def register_secrets(settings: Settings) -> None:
    """Make every configured secret unprintable by the log formatter."""
    for token in settings.server.auth.tokens:
        secrets.add(token.token.get_secret_value())
    if settings.mqtt is not None and settings.mqtt.password is not None:
        secrets.add(settings.mqtt.password.get_secret_value())
    for cam in settings.cameras:
        secrets.add_url(cam.url)
        secrets.add_url(cam.detect_url)


def uvicorn_kwargs(settings: Settings) -> dict[str, Any]:
    """The ``uvicorn.Config`` keyword arguments of ``motionhub serve``, except where it
    listens; tests and benchmarks serve the app with the same ones."""
    return {
        "log_config": None,
        "lifespan": "on",
        "server_header": False,
        "timeout_graceful_shutdown": GRACEFUL_HTTP_TIMEOUT,
        "http": http_protocol(settings.server.max_header_bytes),
        **uvicorn_options(settings.server.websocket),
    }


class StartupError(RuntimeError):
    """The server could not start (already logged, in one line)."""


def _authority(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def listen_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` for uvicorn to listen on. Binding it before anything
    starts finds a port in use at once, not after every camera has been opened; the error
    is one line naming the address."""
    where = _authority(host, port)
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise StartupError(f"cannot listen on {where}: {exc.strerror}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        raise StartupError(f"cannot listen on {where}: {reason.lower()}") from None
    sock.set_inheritable(True)
    return sock


class _Server(uvicorn.Server):
    """uvicorn's server; lets the app see that shutdown began, so live streams end at once,
    and says when it accepts connections."""

    def __init__(self, config: uvicorn.Config, on_ready: Callable[[str], None]) -> None:
        super().__init__(config)
        self.on_ready = on_ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and not self.should_exit and sockets:
            host, port = sockets[0].getsockname()[:2]
            self.on_ready(f"http://{_authority(host, port)}/")


def _log_ready(url: str) -> None:
    log.info("listening on %s (Ctrl+C to stop)", url)


def run(
    settings: Settings,
    sock: socket.socket | None = None,
    on_ready: Callable[[str], None] = _log_ready,
) -> None:
    """Serve ``settings`` with uvicorn until SIGINT/SIGTERM, then shut down gracefully.

    The port is bound first (``sock``, from :func:`listen_socket`, when the caller bound
    it already); ``on_ready`` gets the server's URL once it accepts connections."""
    setup_logging(settings.logging.level, settings.logging.format)
    register_secrets(settings)
    host = bind_host(settings)
    if sock is None:
        try:
            sock = listen_socket(host, settings.server.port)
        except StartupError as exc:
            log.error("%s", exc)
            raise
    with sock:
        app = create_app(settings)
        config = uvicorn.Config(
            app, host=host, port=settings.server.port, **uvicorn_kwargs(settings)
        )
        server = _Server(config, on_ready)
        core: Core = app.state.core
        core.should_exit = lambda: server.should_exit

        def abort() -> None:
            server.should_exit = True

        app.state.abort = abort
        server.run(sockets=[sock])
    error: StorageError | None = getattr(app.state, "startup_error", None)
    if error is not None:
        raise StartupError(str(error))
