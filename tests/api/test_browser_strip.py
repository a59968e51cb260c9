"""The frame strip in the review page (issue 18 item 4), in headless Chromium: a case recorded with frames
across its dwell shows them all under the evidence, and a click opens a strip frame at full size."""

from __future__ import annotations

import pytest

from tests.api.test_browser import login, server, wait_js  # noqa: F401 - server is a fixture
from tests.api.test_browser_queue import chromium, people  # noqa: F401 - fixtures
from tests.api.test_strip import STRIP_FRAMES, record_strip_case
from urbaneye.cases.spool import STRIP_SEQ_BASE

pytestmark = pytest.mark.browser


def test_the_strip_shows_the_dwell_and_a_click_opens_a_frame(
    chromium,  # noqa: F811
    people,  # noqa: F811
    db,
    store,
    api_settings,
    make_camera,
    tmp_path,  # noqa: ANN001
) -> None:
    make_camera("cam-1")
    case_id = record_strip_case(db, store, api_settings)
    page = chromium.page()
    login(page, "demo", "demo-review")
    page.wait_for_selector(f"#queue-list li[data-id='{case_id}'].current")
    page.wait_for_selector("#frame-strip .strip-frame img")
    strip = page.locator("#frame-strip .strip-frame")
    assert strip.count() == 2 + STRIP_FRAMES  # first sighting, dwell crossing and the strip between
    seqs = {
        int(s)
        for s in page.eval_on_selector_all("#frame-strip .strip-frame", "els => els.map(e => e.dataset.seq)")
    }
    assert seqs == {1, 2, *range(STRIP_SEQ_BASE, STRIP_SEQ_BASE + STRIP_FRAMES)}
    wait_js(
        page,
        "[...document.querySelectorAll('#frame-strip img')].every(i => i.complete && i.naturalWidth > 0)",
        "every strip image loaded",
    )
    page.screenshot(path=tmp_path / "strip.png")
    third = STRIP_SEQ_BASE + 2
    assert (
        page.inner_text(f"#frame-strip .strip-frame[data-seq='{third}'] figcaption") == "21:00:57"
    )  # 13:00:11 UTC + 3/9 of 140 s, in Shanghai
    page.click(f"#frame-strip .strip-frame[data-seq='{third}'] img")
    # the strip frame (640x360), not the 480x270 dwell frame, opens large
    wait_js(page, "document.querySelector('#zoom-img')?.naturalWidth === 640", "the strip frame in the zoom")
    assert page.evaluate("document.querySelector('#zoom-img').getBoundingClientRect().width") > 1000
    page.screenshot(path=tmp_path / "strip-zoom.png")
    page.keyboard.press("Escape")
    page.wait_for_selector("#zoom", state="detached")
