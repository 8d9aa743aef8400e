"""The dashboard in headless Chromium against the real app and simulated cameras.

Laptop: token entry, live tiles with motion, a live event in the timeline, drawing a zone
(checked through the API, on reload, and in the motion the server then reports), live
sensitivity, the camera form, and reconnecting with resume; a zone the API refuses shows its
reason in the editor. Phone: the same page in one column and the editor full screen. An
event deleted through the API leaves an open page. Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from browser_harness import (
    ADMIN,
    ARTIFACTS,
    LAPTOP,
    PHONE,
    Server,
    demo_settings,
    require_chromium,
    serve,
)
from playwright.async_api import Browser, BrowserContext, Page, expect

from server.ws import CloseRequest

pytestmark = pytest.mark.slow

ZONE = [(0.04, 0.45), (0.96, 0.45), (0.96, 0.98), (0.04, 0.98)]


@pytest.fixture
async def server(tmp_path: Path, sim_cameras: Any) -> AsyncIterator[Server]:
    require_chromium()
    async with serve(demo_settings(tmp_path, sim_cameras)) as running:
        yield running


def watch_problems(page: Page) -> list[str]:
    """Script errors and Content Security Policy violations seen by the page."""
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))

    def on_console(msg: Any) -> None:
        text = msg.text
        if "Content Security Policy" in text or "Refused to" in text:
            problems.append(f"CSP: {text}")
        elif msg.type == "error" and "Failed to load resource" not in text:
            problems.append(f"console: {text}")

    page.on("console", on_console)
    return problems


async def sign_in(page: Page, url: str) -> None:
    await page.goto(url)
    dialog = page.locator("#token-dialog")
    await expect(dialog).to_be_visible()
    await dialog.locator("input[name=token]").fill(ADMIN)
    await dialog.locator("button[type=submit]").click()
    await expect(page.locator("#conn")).to_have_attribute("data-state", "live", timeout=15_000)


async def signed_in(browser: Browser, url: str) -> tuple[BrowserContext, Page, list[str]]:
    """A laptop-sized page signed in as admin, with the problems it reports."""
    context = await browser.new_context(**LAPTOP)
    page = await context.new_page()
    problems = watch_problems(page)
    await sign_in(page, url)
    return context, page, problems


async def frames_of(page: Page, camera: str) -> int:
    value = await page.locator(f'.tile[data-camera="{camera}"]').get_attribute("data-frames")
    return int(value or 0)


async def draw_zone(
    page: Page, camera: str, name: str, points: list[tuple[float, float]] = ZONE
) -> None:
    await page.locator(f'.tile[data-camera="{camera}"] button', has_text="Zones").click()
    editor = page.locator("#zone-dialog")
    await expect(editor).to_be_visible()
    await page.wait_for_function(
        "() => document.querySelector('#zone-dialog .editor-stage img').naturalWidth > 0"
    )
    await editor.locator("input[name=zone-name]").fill(name)
    canvas = editor.locator("canvas")
    box = await canvas.bounding_box()
    assert box is not None
    for x, y in [*points, points[0]]:  # the last click, on the first point, closes the shape
        await page.mouse.click(box["x"] + x * box["width"], box["y"] + y * box["height"])
    await expect(editor.locator("ul[data-kind=zone] li")).to_have_count(1)


async def test_dashboard_on_a_laptop(server: Server, browser: Browser) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    context, page, problems = await signed_in(browser, server.url)
    await expect(page.locator(".tile")).to_have_count(2)

    # Tiles update: live images keep arriving, and motion lights the indicator.
    busy = page.locator('.tile[data-camera="busy"]')
    await expect(busy).to_have_attribute("data-status", "online", timeout=20_000)
    await page.wait_for_function(
        "() => document.querySelector('.tile[data-camera=busy]').dataset.frames >= 1"
    )
    before = await frames_of(page, "busy")
    await page.wait_for_function(
        f"() => document.querySelector('.tile[data-camera=busy]').dataset.frames >= {before + 3}"
    )
    await expect(busy).to_have_attribute("data-motion", "true", timeout=20_000)

    # Add a camera with the form: its tile comes up, and its first event arrives live in
    # the timeline, with a snapshot.
    await page.locator("#add-camera").click()
    form = page.locator("#camera-dialog")
    await form.locator("input[name=id]").fill("porch")
    await form.locator("input[name=name]").fill("Porch")
    stream = server.app.state.settings.cameras[0].url
    await form.locator("input[name=url]").fill(stream)
    await form.locator("input[name=detect_url]").fill(stream)
    await form.locator("select[name=rtsp_transport]").select_option("udp")
    await form.locator("button[type=submit]").click()
    await expect(form).to_be_hidden()
    porch = page.locator('.tile[data-camera="porch"]')
    await expect(porch.locator("h3")).to_have_text("Porch")
    added = await server.camera("porch")
    assert (added["name"], added["detect_url"], added["rtsp_transport"]) == ("Porch", stream, "udp")
    await expect(porch).to_have_attribute("data-status", "online", timeout=20_000)
    event = page.locator('#events .event[data-camera="porch"]')
    await expect(event).to_have_count(1, timeout=30_000)
    await expect(event.locator('img[src^="blob:"]')).to_have_count(1, timeout=20_000)
    await page.screenshot(path=ARTIFACTS / "dashboard-laptop.png")

    # The enlarged view streams MJPEG, fetched with the token, frame after frame.
    await busy.locator(".frame").click()
    view = page.locator("#view-dialog")
    await expect(view).to_have_attribute("data-source", "mjpeg", timeout=15_000)
    shown = await view.locator("img").get_attribute("src")
    await page.wait_for_function(
        "src => document.querySelector('#view-dialog img').src !== src", arg=shown
    )
    await page.screenshot(path=ARTIFACTS / "dashboard-live-view.png")
    await view.locator("[data-action=close]").click()
    await expect(view).to_be_hidden()

    # Draw a zone on the live frame and save it.
    await draw_zone(page, "busy", "road")
    await page.screenshot(path=ARTIFACTS / "dashboard-zone-editor.png")
    await page.locator("#zone-dialog [data-action=save]").click()
    await expect(page.locator("#zone-dialog")).to_be_hidden()
    zones = (await server.camera("busy"))["zones"]
    assert [z["name"] for z in zones] == ["road"]
    for (x, y), expected in zip(zones[0]["points"], ZONE, strict=True):
        assert x == pytest.approx(expected[0], abs=0.01)
        assert y == pytest.approx(expected[1], abs=0.01)
    # The server's motion messages now report the zone, and the tile shows it lit up.
    road = busy.locator('li.zone[data-zone="road"]')
    await expect(road).to_have_class(re.compile(r"\bactive\b"), timeout=20_000)

    # It persists: after a reload the tile and the editor still have it.
    await page.reload()
    await expect(page.locator("#conn")).to_have_attribute("data-state", "live", timeout=15_000)
    await expect(busy.locator('li.zone[data-zone="road"]')).to_be_visible()
    await busy.locator("button", has_text="Zones").click()
    await expect(page.locator("#zone-dialog ul[data-kind=zone] li")).to_have_text(
        re.compile(r"road \(4 points\)")
    )
    await page.locator("#zone-dialog [data-action=cancel]").click()

    # Live sensitivity.
    await busy.locator(".sensitivity input").fill("73")
    await page.wait_for_timeout(800)
    assert (await server.camera("busy"))["detect"]["sensitivity"] == 73

    # Rename the added camera, then delete it.
    await porch.locator("button", has_text="Edit").click()
    await expect(form.locator("input[name=detect_url]")).to_have_value(stream)
    await expect(form.locator("select[name=rtsp_transport]")).to_have_value("udp")
    await form.locator("input[name=name]").fill("Front porch")
    await form.locator("input[name=detect_url]").fill("")
    await form.locator("button[type=submit]").click()
    await expect(porch.locator("h3")).to_have_text("Front porch")
    edited = await server.camera("porch")
    assert (edited["detect_url"], edited["rtsp_transport"]) == (None, "udp")
    page.once("dialog", lambda d: d.accept())
    await porch.locator("button", has_text="Edit").click()
    await form.locator("[data-action=delete]").click()
    await expect(porch).to_have_count(0)
    assert (await server.client.get("/api/cameras/porch")).status_code == 404

    # The server drops the connection: the page reconnects and resumes from its last event
    # (the one it had when the connection dropped, or a later one if another arrived since).
    connections = int(await page.locator("body").get_attribute("data-connections") or 0)
    seen = await page.evaluate("() => sessionStorage.getItem('motionhub.lastEvent')")
    assert seen
    for client in server.app.state.ws_api.fanout.clients:
        client.finish(CloseRequest(1012, "restarting"))
    await page.wait_for_function(
        f"() => Number(document.body.dataset.connections) > {connections}", timeout=15_000
    )
    await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    # Event ids (ULIDs) sort by time.
    await page.wait_for_function(
        "seen => (document.body.dataset.resumedSince || '') >= seen", arg=seen, timeout=15_000
    )
    resumed = await page.locator("body").get_attribute("data-resumed-since")
    last = await page.evaluate("() => sessionStorage.getItem('motionhub.lastEvent')")
    assert resumed is not None
    assert last is not None
    assert seen <= resumed <= last

    assert problems == []
    await context.close()


async def test_saving_a_zone_the_api_refuses_shows_its_reason_and_keeps_the_editor_open(
    server: Server, browser: Browser
) -> None:
    context, page, problems = await signed_in(browser, server.url)
    # Three points on one line: the editor takes them, the API refuses the zone.
    await draw_zone(page, "busy", "flat", [(0.2, 0.5), (0.5, 0.5), (0.8, 0.5)])
    editor = page.locator("#zone-dialog")
    await editor.locator("[data-action=save]").click()
    await expect(editor.locator(".form-error")).to_contain_text(
        "zone 'flat': its points enclose no area (they are all on one line)"
    )
    # Nothing was saved and nothing was dropped: the zone is still there to fix or remove.
    await expect(editor).to_be_visible()
    zones = editor.locator("ul[data-kind=zone] li")
    await expect(zones).to_have_count(1)
    await expect(zones).to_contain_text("flat (3 points)")
    assert (await server.camera("busy"))["zones"] == []
    assert problems == []
    await context.close()


async def test_an_open_event_deleted_while_disconnected_leaves_the_timeline(
    server: Server, browser: Browser
) -> None:
    context, page, problems = await signed_in(browser, server.url)
    # A garden event has just started: the page shows it ongoing.
    ongoing = page.locator('#events li.ongoing[data-camera="cycle"]').first
    await expect(ongoing).to_be_visible(timeout=30_000)
    event_id = await ongoing.get_attribute("data-event-id")
    assert event_id
    connections = int(await page.locator("body").get_attribute("data-connections") or 0)

    # The page loses the server; meanwhile the event ends and is deleted.
    await context.set_offline(True)
    for client in server.app.state.ws_api.fanout.clients:
        client.finish(CloseRequest(1012, "restarting"))
    await expect(page.locator("#conn")).to_have_attribute("data-state", "reconnecting")
    for _ in range(300):
        stored = (await server.client.get(f"/api/events/{event_id}")).json()
        if stored["end"] is not None:
            break
        await page.wait_for_timeout(100)
    assert stored["end"] is not None, "the garden event did not end"
    assert (await server.client.delete(f"/api/events/{event_id}")).status_code == 204

    # Back online: the page reconnects, finds the event gone, and stops showing it as
    # ongoing (it had kept it ongoing for ever).
    await context.set_offline(False)
    await page.wait_for_function(
        f"() => Number(document.body.dataset.connections) > {connections}", timeout=30_000
    )
    await expect(page.locator(f'#events li[data-event-id="{event_id}"]')).to_have_count(0)
    # Chromium logs each connection attempt it refused while offline; nothing else.
    assert [p for p in problems if "ERR_INTERNET_DISCONNECTED" not in p] == []
    await context.close()


async def test_an_event_deleted_through_the_api_leaves_an_open_page(
    server: Server, browser: Browser
) -> None:
    from server.events import utc
    from server.messages import Event

    core = server.app.state.core
    now = time.time()
    event_id = core.ids.new(now - 5)
    core.storage.save_event(
        Event(id=event_id, camera="cycle", start=utc(now - 5), end=utc(now - 3), peak_score=0.2)
    )
    context, page, problems = await signed_in(browser, server.url)
    row = page.locator(f'#events li[data-event-id="{event_id}"]')
    await expect(row).to_have_count(1, timeout=15_000)
    connections = await page.locator("body").get_attribute("data-connections")

    assert (await server.client.delete(f"/api/events/{event_id}")).status_code == 204
    # Gone while the page stays connected: no reload, no reconnect.
    await expect(row).to_have_count(0)
    assert await page.locator("body").get_attribute("data-connections") == connections
    assert problems == []
    await context.close()


async def test_a_page_left_open_keeps_only_the_newest_events(
    server: Server, browser: Browser
) -> None:
    context, page, problems = await signed_in(browser, server.url)
    events = page.locator("#events .event")
    await expect(events.nth(1)).to_be_visible(timeout=30_000)
    ids = await page.eval_on_selector_all(
        "#events .event", "nodes => nodes.map(n => n.dataset.eventId)"
    )
    # Keep as many as the page has now (the real limit is the same code with 300).
    await page.evaluate("n => { document.querySelector('#events').dataset.keep = n }", len(ids))

    # New events arrive live; the oldest leave the page instead of piling up.
    await page.wait_for_function(
        "newest => document.querySelector('#events .event').dataset.eventId > newest",
        arg=max(ids),
        timeout=30_000,
    )
    await expect(events).to_have_count(len(ids))
    oldest = page.locator(f'#events li[data-event-id="{min(ids)}"]')
    await expect(oldest).to_have_count(0)

    # "Older events" brings them back.
    more = page.locator("#more-events")
    await expect(more).to_be_visible()
    await more.click()
    await expect(oldest).to_have_count(1)
    assert problems == []
    await context.close()


async def test_without_the_server_cameras_are_not_shown_online(
    server: Server, browser: Browser
) -> None:
    context, page, problems = await signed_in(browser, server.url)
    busy = page.locator('.tile[data-camera="busy"]')
    await expect(busy).to_have_attribute("data-status", "online", timeout=20_000)
    await expect(page.locator("#stats")).to_contain_text("online", timeout=20_000)
    connections = int(await page.locator("body").get_attribute("data-connections") or 0)

    # The page loses the server: it cannot know the cameras' state any more.
    await context.set_offline(True)
    for client in server.app.state.ws_api.fanout.clients:
        client.finish(CloseRequest(1012, "restarting"))
    await expect(page.locator("#conn")).to_have_attribute("data-state", "reconnecting")
    await expect(busy).to_have_attribute("data-status", "unknown")
    await expect(busy.locator(".status")).to_have_text("unknown")
    await expect(page.locator("#stats")).to_have_text("")

    # Back online: the state is loaded again.
    await context.set_offline(False)
    await page.wait_for_function(
        f"() => Number(document.body.dataset.connections) > {connections}", timeout=30_000
    )
    await expect(busy).to_have_attribute("data-status", "online")
    await expect(page.locator("#stats")).to_contain_text("online", timeout=20_000)
    # Chromium logs each connection attempt it refused while offline; nothing else.
    assert [p for p in problems if "ERR_INTERNET_DISCONNECTED" not in p] == []
    await context.close()


async def test_an_event_opened_before_its_thumbnail_loaded_shows_its_snapshot(
    server: Server, browser: Browser
) -> None:
    # A short phone screen: the timeline is far below the cameras, so no thumbnail loads.
    context = await browser.new_context(**{**PHONE, "viewport": {"width": 390, "height": 400}})
    page = await context.new_page()
    problems = watch_problems(page)
    await sign_in(page, server.url)
    # Until the camera tiles are laid out the timeline sits near the top, in view, and the
    # events listed then load their thumbnails: take an event that starts after that.
    for camera in ("busy", "cycle"):
        tile = page.locator(f'.tile[data-camera="{camera}"]')
        await expect(tile).to_have_attribute("data-status", "online", timeout=20_000)
    before = {e["id"] for e in (await server.client.get("/api/events")).json()["events"]}
    event_id = None
    for _ in range(300):
        page_of_events = (await server.client.get("/api/events")).json()["events"]
        with_snapshot = [
            e["id"] for e in page_of_events if e["has_snapshot"] and e["id"] not in before
        ]
        if with_snapshot:
            event_id = with_snapshot[0]
            break
        await page.wait_for_timeout(100)
    assert event_id, "no new event with a snapshot"
    item = page.locator(f'#events li[data-event-id="{event_id}"]')
    await expect(item).to_have_count(1, timeout=15_000)
    assert await item.locator("img").get_attribute("src") is None

    # Activated without scrolling to it (as a keyboard or screen reader can).
    await item.locator("button.event-open").dispatch_event("click")
    dialog = page.locator("#view-dialog")
    await expect(dialog).to_be_visible()
    await page.wait_for_function(
        "() => document.querySelector('#view-dialog img').naturalWidth > 0", timeout=15_000
    )
    await dialog.locator("[data-action=close]").click()
    await expect(dialog).to_be_hidden()
    assert problems == []
    await context.close()


async def test_event_times_are_local_with_the_full_moment_and_zone_on_hover(
    server: Server, browser: Browser
) -> None:
    context = await browser.new_context(**LAPTOP, timezone_id="Asia/Kathmandu", locale="en-GB")
    page = await context.new_page()
    problems = watch_problems(page)
    await sign_in(page, server.url)
    when = page.locator("#events .event time").first
    await expect(when).to_be_visible(timeout=30_000)
    iso = await when.get_attribute("datetime")
    assert iso
    local = datetime.fromisoformat(iso).astimezone(ZoneInfo("Asia/Kathmandu"))
    await expect(when).to_contain_text(local.strftime("%H:%M"))
    title = await when.get_attribute("title")
    assert title is not None
    assert local.strftime("%H:%M:%S") in title
    assert str(local.year) in title
    assert "GMT+5:45" in title
    assert problems == []
    await context.close()


async def test_dashboard_on_a_phone(server: Server, browser: Browser) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    context = await browser.new_context(**PHONE)
    page = await context.new_page()
    problems = watch_problems(page)
    await sign_in(page, server.url)
    tiles = page.locator(".tile")
    await expect(tiles).to_have_count(2)
    await page.wait_for_function(
        "() => [...document.querySelectorAll('.tile')].every(t => t.dataset.frames >= 2)",
        timeout=20_000,
    )
    # One column: the tiles are stacked and as wide as the screen allows.
    first, second = await tiles.nth(0).bounding_box(), await tiles.nth(1).bounding_box()
    assert first is not None
    assert second is not None
    assert second["y"] > first["y"] + first["height"] - 1
    assert first["width"] > 340
    assert await page.evaluate("() => document.documentElement.scrollWidth") <= 390
    await page.screenshot(path=ARTIFACTS / "dashboard-phone.png")

    await expect(page.locator("#events .event").first).to_be_visible(timeout=30_000)
    await page.locator(".timeline").scroll_into_view_if_needed()
    await page.screenshot(path=ARTIFACTS / "dashboard-phone-timeline.png")

    await draw_zone(page, "cycle", "lawn")
    await page.screenshot(path=ARTIFACTS / "dashboard-phone-editor.png")
    await page.locator("#zone-dialog [data-action=save]").click()
    await expect(page.locator("#zone-dialog")).to_be_hidden()
    assert [z["name"] for z in (await server.camera("cycle"))["zones"]] == ["lawn"]
    assert problems == []
    await context.close()


async def test_dashboard_headers_and_offline_assets(server: Server) -> None:
    page = await server.client.get("/")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["x-frame-options"] == "DENY"
    # No inline scripts or styles, nothing from another host: everything is packaged.
    html = page.text
    assert re.search(r"<script(?![^>]*\bsrc=)", html) is None
    assert "style=" not in html
    assert re.search(r"""(src|href)=["']?(https?:)?//""", html) is None
    for asset in re.findall(r"""(?:src|href)="(dashboard/[^"]+)""", html):
        r = await server.client.get(f"/{asset}")
        assert r.status_code == 200, asset
        assert "content-security-policy" in r.headers
    # The API is not given the dashboard's CSP (it would break /docs).
    api = await server.client.get("/api/cameras")
    assert "content-security-policy" not in api.headers
