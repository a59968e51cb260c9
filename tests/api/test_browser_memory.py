"""The camera page's false-alarm memory in headless Chromium: an entry made by a rejection shows its crop,
reviewer and suppression count; an admin deletes it. Screenshots go to test-artifacts/api/."""

# ruff: noqa: F811 - the browser fixtures are imported from test_browser and used as arguments

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from tests.api.test_browser import ARTIFACTS, login, page, seeded, server, wait_js  # noqa: F401 - fixtures

pytestmark = pytest.mark.browser


def test_camera_page_lists_memory_entries_and_an_admin_deletes_one(
    page, seeded, db, store, make_case
) -> None:  # noqa: ANN001
    from urbaneye.db.models import FalseAlarmMemory
    from urbaneye.memory import remember_rejection

    reviewer = seeded["users"]["demo"]
    case = make_case(kind="exposed_garbage", status="rejected", reject_reason="fixed_object")
    row = remember_rejection(db, store, case, reviewer.id, ttl_days=30)
    row.suppressed_count = 3
    row.last_suppressed_at = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    db.commit()
    entry_id = row.id

    login(page, "admin", "admin-demo")
    page.goto(page.base + "/ui/#/cameras/cam-1")
    entry = page.locator(f"tr.memory-entry[data-entry='{row.id}']")
    entry.wait_for()
    assert entry.locator(".memory-reviewer").inner_text() == "demo"
    assert entry.locator(".memory-count").inner_text() == "3 次"
    assert "固定设施/常驻物体" in entry.inner_text() and "生效中" in entry.inner_text()
    wait_js(page, "document.querySelector('.memory-crop')?.naturalWidth > 0", "the crop loaded")
    page.locator("#memory").scroll_into_view_if_needed()
    page.screenshot(path=ARTIFACTS / "10-camera-memory.png", full_page=True)

    page.on("dialog", lambda dialog: dialog.accept())
    entry.locator(".memory-delete").click()
    page.wait_for_selector("#memory >> text=暂无记忆")
    db.expire_all()
    assert db.scalar(select(FalseAlarmMemory).where(FalseAlarmMemory.id == entry_id)) is None
