"""The review queue in headless Chromium (issue 18): times in the camera's zone agree with the evidence caption,
a new case reaches an open queue live, two reviewers never get the same case, and empty states throw nothing.
Screenshots at 1366x768 go to each test's tmp dir."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from tests.api.test_browser import CHROMIUM_ARGS, login, server, wait_js  # noqa: F401 - server is a fixture
from tests.waiting import wait_for

pytestmark = pytest.mark.browser

VIEWPORT = {"width": 1366, "height": 768}
REVIEWER2 = ("reviewer2", "review-pass-2")


class Browser:
    """One Chromium, pages in their own contexts (separate logins); every page's console errors collected."""

    def __init__(self, pw, base: str) -> None:  # noqa: ANN001
        self.browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        self.base = base
        self.errors: list[str] = []

    def page(self, timezone_id: str = "America/New_York"):  # noqa: ANN201
        # the browser's own zone is neither UTC nor the camera's: times must come out in the camera's zone
        context = self.browser.new_context(viewport=VIEWPORT, locale="zh-CN", timezone_id=timezone_id)
        page = context.new_page()
        page.on("pageerror", lambda exc: self.errors.append(f"{page.url}: {exc}"))
        page.on(
            "console",
            lambda msg: self.errors.append(f"{page.url}: {msg.text}") if msg.type == "error" else None,
        )
        page.set_default_timeout(20_000)
        page.base = self.base  # type: ignore[attr-defined]
        return page


@pytest.fixture
def chromium(server) -> Iterator[Browser]:  # noqa: ANN001, F811
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = Browser(pw, server)
        yield b
        b.browser.close()
    assert not b.errors, f"browser errors: {b.errors}"


@pytest.fixture
def people(db) -> dict:  # noqa: ANN001
    from api.auth import create_user, ensure_demo_users
    from urbaneye.db.models import Role

    users = {u.username: u for u in ensure_demo_users(db)}
    users[REVIEWER2[0]] = create_user(db, *REVIEWER2, Role.REVIEWER, "审核员乙")
    db.commit()
    return users


def current_id(page) -> str:  # noqa: ANN001
    return page.get_attribute("#queue-list li.current", "data-id")


def on_screen(page) -> None:  # noqa: ANN001
    """Wait until the case marked current in the list is the one drawn on the page, and is this reviewer's."""
    wait_js(
        page,
        "(() => { const li = document.querySelector('#queue-list li.current');"
        " const m = document.getElementById('case').dataset;"
        " return !!li && m.caseId === li.dataset.id && m.claimedId === li.dataset.id; })()",
        "the current case on screen and claimed",
    )


def test_times_agree_with_the_evidence_caption(
    chromium, people, db, make_camera, make_case, tmp_path
) -> None:  # noqa: ANN001
    from urbaneye.db.models import Evidence
    from vision.config import CameraConfig

    cam = make_camera("cam-1")
    # 13:00:11 UTC is 21:00:11 in Shanghai: the caption burned into the image says 21:00:11
    t = dt.datetime(2026, 12, 3, 13, 0, 11, tzinfo=dt.UTC)
    case = make_case(created_at=t)
    frame_ts = db.scalar(select(Evidence.frame_ts).where(Evidence.case_id == case.id, Evidence.seq == 2))
    dwell = db.scalar(
        select(Evidence).where(
            Evidence.case_id == case.id, Evidence.seq == 2, Evidence.variant == "annotated"
        )
    )
    for seq in (3, 4, 5):  # more frames across the dwell: shown as a strip
        db.add(
            Evidence(
                case_id=case.id,
                seq=seq,
                variant="annotated",
                key=dwell.key,
                sha256=dwell.sha256,
                size_bytes=dwell.size_bytes,
                frame_ts=frame_ts + dt.timedelta(seconds=20 * seq),
                uploaded=True,
            )
        )
    db.commit()
    config = CameraConfig.model_validate({**cam.config, "zones": []})
    # what streams/events.py hands vision/evidence.py for the caption, formatted as the caption formats it
    caption = config.local_time(frame_ts.timestamp(), live=True).strftime("%Y-%m-%d %H:%M:%S")
    assert caption == "2026-12-03 21:00:11"
    start = config.local_time(case.started_at.timestamp(), live=True).strftime("%Y-%m-%d %H:%M:%S")

    page = chromium.page()
    login(page, "demo", "demo-review")
    page.wait_for_selector(f"#queue-list li[data-id='{case.id}'].current")
    page.wait_for_selector(".frame[data-seq='2'] .frame-time")
    assert page.inner_text(".frame[data-seq='2'] .frame-time") == caption
    assert page.inner_text("#fact-start") == start
    assert page.inner_text("#fact-zone") == "人民路北口"  # the zone's name, not its id
    assert page.inner_text("#fact-camera") == "人民路 cam-1"
    entry = page.inner_text(f"#queue-list li[data-id='{case.id}'] .qmeta")
    assert entry.endswith("12-03 21:00") and re.search(r"\d\d:\d\d$", entry), entry  # no stray colon
    page.screenshot(path=tmp_path / "times.png")

    # Z opens the full-resolution dwell frame, not the crop
    page.keyboard.press("z")
    wait_js(page, "document.querySelector('#zoom-img')?.naturalWidth === 480", "the full frame in the zoom")
    assert page.evaluate("document.querySelector('#zoom-img').getBoundingClientRect().width") > 1000
    page.screenshot(path=tmp_path / "zoom.png")
    page.keyboard.press("Escape")
    page.wait_for_selector("#zoom", state="detached")
    # the strip: every frame in time order, each opening at full resolution
    assert page.locator("#frame-strip .strip-frame").count() == 5
    assert page.inner_text("#frame-strip .strip-frame[data-seq='3'] figcaption") == "21:01:11"
    page.click("#frame-strip .strip-frame[data-seq='4'] img")
    wait_js(page, "document.querySelector('#zoom-img')?.naturalWidth === 480", "a strip frame in the zoom")
    page.keyboard.press("Escape")
    page.wait_for_selector("#zoom", state="detached")
    # 合规经营 is a reason for vending cases only
    assert page.locator(".decide button[data-reason='permitted_vending']").count() == 1


def test_a_new_case_reaches_an_open_queue_live(
    chromium, people, db, make_camera, make_case, tmp_path
) -> None:  # noqa: ANN001
    make_camera("cam-1")
    page = chromium.page()
    login(page, "demo", "demo-review")
    page.wait_for_selector("#queue-empty")
    wait_js(page, "document.documentElement.dataset.live === 'on'", "the live feed connected")
    page.keyboard.press("a")  # keys on an empty queue do nothing (and throw nothing)
    page.keyboard.press("z")
    page.keyboard.press("y")
    page.screenshot(path=tmp_path / "empty-queue.png")

    first = make_case(kind="exposed_garbage", created_at=dt.datetime.now(dt.UTC))  # as a worker would
    # the queue page never polls: only the live feed can bring the case (how fast is `urbaneye bench`'s, not a
    # test's, to say; the deadline only bounds a hung test)
    page.wait_for_selector(f"#queue-list li[data-id='{first.id}'].current", timeout=30_000)
    page.wait_for_selector("#facts")
    assert page.inner_text("#pending-count") == "1"
    # a vending-only reason is not offered on a garbage case
    assert page.locator(".decide button[data-reason='permitted_vending']").count() == 0

    second = make_case(created_at=dt.datetime.now(dt.UTC))
    page.wait_for_selector(f"#queue-list li[data-id='{second.id}']", timeout=30_000)
    page.wait_for_selector("#new-cases >> text=1 件新案件")
    wait_js(page, "document.getElementById('pending-count').textContent === '2'", "the badge counts both")
    assert current_id(page) == first.id  # the reviewer is not pulled away from the case in front of them
    page.screenshot(path=tmp_path / "new-case-notice.png")
    page.click("#new-cases")
    page.wait_for_selector(f"#queue-list li[data-id='{second.id}'].current")

    for view, ready in (("cameras", ".cam-card"), ("stats", ".report")):
        page.goto(page.base + f"/ui/#/{view}")
        page.wait_for_selector(ready)
        page.screenshot(path=tmp_path / f"{view}.png")


def test_two_reviewers_never_get_the_same_case(
    chromium, people, db, make_camera, make_case, tmp_path
) -> None:  # noqa: ANN001
    from urbaneye.db.models import Review

    make_camera("cam-1")
    now = dt.datetime.now(dt.UTC)
    cases = [make_case(created_at=now - dt.timedelta(minutes=10 - i)) for i in range(4)]
    a = chromium.page()
    b = chromium.page()

    # b's queue is read before a takes its first case and reaches b only afterwards: b loses the race for it
    held: list = []
    holding = [True]

    def hold(route) -> None:  # noqa: ANN001
        if holding[0]:
            held.append((route, route.fetch()))  # read now, delivered later
        else:
            route.continue_()

    b.route(lambda url: "/api/v1/cases?" in url and "pending_review" in url, hold)
    login(b, *REVIEWER2)
    wait_for(lambda: b.evaluate("1") and bool(held), what="b's queue read")  # evaluate lets b's events run
    login(a, "demo", "demo-review")
    a.wait_for_selector(f"#queue-list li[data-id='{cases[0].id}'].current")
    a.wait_for_selector("#facts")
    holding[0] = False
    for route, response in held:
        route.fulfill(response=response)
    b.wait_for_selector("#toast.show >> text=审核中")
    b.screenshot(path=tmp_path / "race-loser.png")
    b.wait_for_selector(f"#queue-list li[data-id='{cases[1].id}'].current")

    def decided() -> list[str]:
        db.expire_all()
        return sorted(r.case_id for r in db.scalars(select(Review)))

    # each decides what is on their screen, in turn, twice: four different cases, each decided once
    for _ in range(2):
        on_screen(a)
        on_screen(b)
        assert current_id(a) != current_id(b)
        for page in (a, b):
            # a's decision reaches b's live queue, which may redraw b's case: wait until it is back on screen
            on_screen(page)
            n, case_id = len(decided()), current_id(page)
            page.keyboard.press("y")
            wait_for(
                lambda n=n, case_id=case_id: case_id in decided() and len(decided()) == n + 1,
                what="the decision saved",
            )

    wait_for(lambda: decided() == sorted(c.id for c in cases), what="each case decided exactly once")
    a.wait_for_selector("#queue-empty")
    b.wait_for_selector("#queue-empty")
    a.screenshot(path=tmp_path / "both-done.png")
