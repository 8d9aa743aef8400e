"""Serving the dashboard: ``/`` is the page, ``/dashboard/...`` its scripts and styles.

Everything is local files in the package (no CDN), so the dashboard works offline and
the Content Security Policy can forbid every script that is not one of them.
"""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse
from starlette.datastructures import MutableHeaders
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["STATIC_DIR", "SecurityHeaders", "content_security_policy", "mount_dashboard"]

STATIC_DIR = Path(__file__).parent / "static"
ASSETS_PREFIX = "/dashboard"

_HOST = re.compile(r"^[A-Za-z0-9.\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")

router = APIRouter()


def content_security_policy(host: str | None) -> str:
    """The dashboard's CSP: only its own scripts and styles, images from itself or blob
    URLs, connections to itself (HTTP and WebSocket), and no framing by anyone."""
    connect = "'self'"
    if host and _HOST.fullmatch(host):
        # CSP Level 3 browsers include ws(s) in 'self'; older ones need it spelled out.
        connect += f" ws://{host} wss://{host}"
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' blob: data:",
            f"connect-src {connect}",
            "manifest-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
            "object-src 'none'",
        ]
    )


_STATIC_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=()",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
}


class SecurityHeaders:
    """ASGI middleware: security headers on every dashboard response (``/`` and
    ``/dashboard/...``, errors included). The API and ``/docs`` are left alone."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (
            path in ("/", ASSETS_PREFIX) or path.startswith(ASSETS_PREFIX + "/")
        ):
            await self.app(scope, receive, send)
            return
        host = None
        for name, value in scope.get("headers", []):
            if name == b"host":
                host = value.decode("latin-1")
                break
        csp = content_security_policy(host)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for key, value in _STATIC_HEADERS.items():
                    headers[key] = value
                headers["content-security-policy"] = csp
                if "cache-control" not in headers:
                    # Revalidate (ETag) so an upgraded server never runs stale scripts.
                    headers["cache-control"] = "no-cache"
            await send(message)

        await self.app(scope, receive, send_with_headers)


@router.get("/", include_in_schema=False)
async def index() -> HTMLResponse:
    """The dashboard page."""
    return HTMLResponse((STATIC_DIR / "index.html").read_text(encoding="utf-8"))


def mount_dashboard(app: FastAPI) -> None:
    """Serve the dashboard on ``app`` at ``/``, with :class:`SecurityHeaders`."""
    app.include_router(router)
    app.mount(ASSETS_PREFIX, StaticFiles(directory=STATIC_DIR), name="dashboard")
    app.add_middleware(SecurityHeaders)
