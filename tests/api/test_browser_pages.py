"""Every page of the review UI in headless Chromium, as admin and as reviewer, with data and empty (issue 18):
no console error and no uncaught exception on any of them, keys on an empty queue included; a screenshot of
each at 1366x768 goes to ``$URBANEYE_ARTIFACTS/pages`` (else the test's tmp dir)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.test_browser import (  # noqa: F401 - server and seeded are fixtures
    CHROMIUM_ARGS,
    login,
    seeded,
    server,
    wait_js,
)
from tests.waiting import wait_for

pytestmark = pytest.mark.browser

VIEWPORT = {"width": 1366, "height": 768}
LOGINS = {"admin": ("admin", "admin-demo"), "reviewer": ("demo", "demo-review")}
PAGES = ("queue", "cameras", "stats", "annotate")
#: the live queue's stream stays open while a page is shown; it is not a request the page waits for
LIVE_STREAM = "/api/v1/live/events"


class Watched:
    """A page whose console errors, uncaught exceptions and requests in flight are followed."""

    def __init__(self, page) -> None:  # noqa: ANN001
        self.page = page
        self.errors: list[str] = []
        self.in_flight: set = set()
        self.last_change = time.monotonic()
        page.on("pageerror", lambda exc: self.errors.append(f"{page.url}: uncaught {exc}"))
        page.on(
            "console",
            lambda msg: self.errors.append(f"{page.url}: {msg.text}") if msg.type == "error" else None,
        )
        page.on("request", self._started)
        page.on("requestfinished", self._ended)
        page.on("requestfailed", self._ended)

    def _started(self, request) -> None:  # noqa: ANN001
        if LIVE_STREAM not in request.url:
            self.in_flight.add(request)
            self.last_change = time.monotonic()

    def _ended(self, request) -> None:  # noqa: ANN001
        self.in_flight.discard(request)
        self.last_change = time.monotonic()

    def settled(self) -> bool:
        """The view is drawn and no request has been open for a moment (what a page loads, it has loaded)."""
        drawn = self.page.evaluate("document.getElementById('view').childElementCount > 0")  # runs our events
        return drawn and not self.in_flight and time.monotonic() - self.last_change > 0.5

    def show(self, hash_path: str, shots: Path, name: str) -> None:
        self.page.goto(f"{self.page.base}/ui/#/{hash_path}")
        wait_for(self.settled, what=f"page #/{hash_path} loaded")
        self.page.screenshot(path=shots / f"{name}.png")


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    root = os.environ.get("URBANEYE_ARTIFACTS")
    folder = Path(root) / "pages" if root else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def chromium(server) -> Iterator:  # noqa: ANN001, F811
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)

        def open_page(viewport: dict[str, int] = VIEWPORT) -> Watched:
            context = browser.new_context(viewport=viewport, locale="zh-CN", timezone_id="Asia/Shanghai")
            page = context.new_page()
            page.set_default_timeout(20_000)
            page.base = server  # type: ignore[attr-defined]
            return Watched(page)

        yield open_page
        browser.close()


@pytest.mark.parametrize("role", sorted(LOGINS))
def test_every_page_with_data_has_no_console_error(chromium, seeded, role, shots) -> None:  # noqa: ANN001, F811
    watched = chromium()
    login(watched.page, *LOGINS[role])
    for name in PAGES:
        watched.show(name, shots, f"{role}-{name}")
    case_id = seeded["pending"][0].id
    watched.show(f"case/{case_id}", shots, f"{role}-case")
    watched.show("queue", shots, f"{role}-queue-again")  # back from another page: the queue mounts again
    assert not watched.errors, watched.errors


@pytest.mark.parametrize("role", sorted(LOGINS))
def test_every_page_empty_has_no_console_error(chromium, db, role, shots) -> None:  # noqa: ANN001
    from api.auth import ensure_demo_users

    ensure_demo_users(db)
    db.commit()
    watched = chromium()
    page = watched.page
    page.goto(page.base + "/")
    page.wait_for_selector("#login-form")
    page.screenshot(path=shots / f"{role}-empty-login.png")
    login(page, *LOGINS[role])
    watched.show("queue", shots, f"{role}-empty-queue")
    page.wait_for_selector("#queue-empty")
    for key in ("a", "z", "y", "n", "u", "Escape"):  # review keys with nothing to review do nothing
        page.keyboard.press(key)
    wait_for(watched.settled, what="the empty queue after the review keys")
    for name in PAGES[1:]:
        watched.show(name, shots, f"{role}-empty-{name}")
    assert not watched.errors, watched.errors


@pytest.mark.parametrize("size", [(1366, 768), (1920, 1080)], ids=["1366x768", "1920x1080"])
def test_zone_editor_snapshot_fits_the_screen(chromium, seeded, size, shots) -> None:  # noqa: ANN001, F811
    """The zone editor's snapshot, bottom vertices included, is in view without scrolling (issue 18 item 6)."""
    width, height = size
    watched = chromium({"width": width, "height": height})
    page = watched.page
    login(page, *LOGINS["admin"])
    watched.show("cameras", shots, f"zone-editor-list-{width}")
    page.click(".cam-card")
    wait_js(page, "document.querySelector('#snapshot')?.naturalWidth > 0", "the snapshot loaded")
    wait_for(watched.settled, what="the zone editor loaded")
    box = page.locator("#snapshot").bounding_box()
    page.screenshot(path=shots / f"zone-editor-{width}.png")
    assert box["y"] >= 0 and box["y"] + box["height"] <= height, (box, size)
    assert page.evaluate("window.scrollY") == 0
    assert not watched.errors, watched.errors
