"""Camera names as users write them, in headless Chromium against the real app: a name
with HTML in it stays text (no script runs), a long one is cut short on its tile but
readable in full, and each tile's controls name their camera for screen readers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from browser_harness import ADMIN, LAPTOP, Server, require_chromium, serve
from playwright.async_api import Browser, expect

from server.config import Settings

pytestmark = pytest.mark.slow

HTML_NAME = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'
LONG_NAME = ("Camera over the back garden gate, " + "looking at the shed " * 4).strip()


@pytest.fixture
async def server(tmp_path: Path, sim_cameras: Any) -> AsyncIterator[Server]:
    require_chromium()
    settings = Settings(
        server={"auth": {"tokens": [{"token": ADMIN, "role": "admin"}]}},
        storage={"path": str(tmp_path)},
        cameras=[
            {"id": "html", "name": HTML_NAME, "url": sim_cameras.mjpeg_url_for("busy")},
            {"id": "long", "name": LONG_NAME, "url": sim_cameras.mjpeg_url_for("cycle")},
        ],
    )
    async with serve(settings) as running:
        yield running


async def test_names_are_text_readable_in_full_and_label_the_controls(
    server: Server, browser: Browser
) -> None:
    context = await browser.new_context(**LAPTOP)
    await context.add_init_script(f"sessionStorage.setItem('motionhub.token', '{ADMIN}')")
    page = await context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: dialogs.append(d.message))
    await page.goto(server.url)
    await expect(page.locator("#conn")).to_have_attribute("data-state", "live", timeout=15_000)

    html_tile = page.locator('.tile[data-camera="html"]')
    await expect(html_tile.locator("h3")).to_have_text(HTML_NAME)
    assert await html_tile.locator("h3 img, h3 script").count() == 0
    assert await page.evaluate("() => window.pwned") is None

    long_title = page.locator('.tile[data-camera="long"] h3')
    await expect(long_title).to_have_text(LONG_NAME)
    # Cut short on the tile, so the whole name must be in its tooltip.
    assert await long_title.evaluate("h => h.scrollWidth > h.clientWidth")
    await expect(long_title).to_have_attribute("title", LONG_NAME)

    for name in (HTML_NAME, LONG_NAME):
        live_view = page.get_by_role("button", name=f"Open the live view of {name}")
        await expect(live_view).to_have_count(1)
        await expect(page.get_by_role("button", name=f"Zones of {name}")).to_have_count(1)
        await expect(page.get_by_role("button", name=f"Edit {name}")).to_have_count(1)
        await expect(page.get_by_role("slider", name=f"Sensitivity of {name}")).to_have_count(1)
    assert dialogs == []
    await context.close()
