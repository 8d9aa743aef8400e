"""The headless Chromium every dashboard test drives."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from browser_harness import CHROMIUM, CHROMIUM_ARGS, require_chromium
from playwright.async_api import Browser, async_playwright


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    require_chromium()
    async with async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()
