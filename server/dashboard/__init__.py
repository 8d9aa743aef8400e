"""The browser dashboard: static files served at ``/`` with strict security headers.

Wiring, in the app factory::

    mount_dashboard(app)

See ``docs/dashboard.md``.
"""

from __future__ import annotations

from server.dashboard.routes import (
    STATIC_DIR,
    SecurityHeaders,
    content_security_policy,
    mount_dashboard,
)

__all__ = ["STATIC_DIR", "SecurityHeaders", "content_security_policy", "mount_dashboard"]
