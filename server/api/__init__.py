"""The REST API, one module per resource."""

from __future__ import annotations

from fastapi import APIRouter

from server.api import cameras, events, system

__all__ = ["build_router"]


def build_router() -> APIRouter:
    """Every REST route."""
    router = APIRouter()
    router.include_router(cameras.router)
    router.include_router(events.router)
    router.include_router(system.router)
    return router
