"""A server without cameras or events, in headless Chromium against the real app: the page
says so for both, and stops saying so once a camera added through the API has an event."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from browser_harness import ADMIN, LAPTOP, Server, require_chromium, serve
from playwright.async_api import Browser, expect

from server.config import Settings

pytestmark = pytest.mark.slow


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    require_chromium()
    settings = Settings(
        server={"auth": {"tokens": [{"token": ADMIN, "role": "admin"}]}},
        storage={"path": str(tmp_path)},
        cameras=[],
    )
    async with serve(settings) as running:
        yield running


async def test_no_cameras_and_no_events_are_said_plainly(
    server: Server, browser: Browser, sim_cameras: Any
) -> None:
    context = await browser.new_context(**LAPTOP)
    await context.add_init_script(f"sessionStorage.setItem('motionhub.token', '{ADMIN}')")
    page = await context.new_page()
    await page.goto(server.url)
    await expect(page.locator("#conn")).to_have_attribute("data-state", "live", timeout=15_000)
    await expect(page.locator("#events")).to_have_attribute("data-loaded", "true")
    await expect(page.locator("#no-cameras")).to_be_visible()
    await expect(page.locator("#no-events")).to_be_visible()
    await expect(page.locator("#no-events")).to_have_text("No events yet.")

    camera = {"id": "busy", "name": "Street", "url": sim_cameras.mjpeg_url_for("busy")}
    assert (await server.client.post("/api/cameras", json=camera)).status_code == 201
    await expect(page.locator("#events .event").first).to_be_visible(timeout=30_000)
    await expect(page.locator("#no-events")).to_be_hidden()
    await expect(page.locator("#no-cameras")).to_be_hidden()
    await context.close()
