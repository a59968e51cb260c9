"""The reviewer UI in headless Chromium against uvicorn + PostgreSQL with seeded cases and evidence:
review by keyboard, draw a zone on a camera snapshot, look at the statistics. Screenshots go to
test-artifacts/ (look at them)."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.api.conftest import scene_jpeg
from tests.conftest import free_port
from tests.waiting import wait_for

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "api"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def server(app) -> Iterator[str]:  # noqa: ANN001
    """uvicorn serving the app on a free loopback port, in a thread of this process."""
    import uvicorn

    port = free_port()
    srv = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


@pytest.fixture
def page(server) -> Iterator:  # noqa: ANN001
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1440, "height": 1000}, locale="zh-CN")
        pg = context.new_page()
        errors: list[str] = []
        pg.on("pageerror", lambda exc: errors.append(str(exc)))
        # a refused form (422) is logged by Chromium as a failed resource; the UI shows it to the user
        pg.on(
            "console",
            lambda msg: (
                errors.append(msg.text) if msg.type == "error" and "(Unprocessable" not in msg.text else None
            ),
        )
        pg.set_default_timeout(20_000)
        pg.base = server  # type: ignore[attr-defined]
        yield pg
        browser.close()
        assert not errors, f"browser errors: {errors}"


def wait_js(page, expression: str, what: str) -> None:  # noqa: ANN001
    """Poll a page expression until true. Not ``page.wait_for_function``: its polling evaluates the text
    with eval() inside the page, which the UI's content security policy (no 'unsafe-eval') forbids."""
    wait_for(lambda: page.evaluate(expression), what=what)


def login(page, username: str, password: str) -> None:  # noqa: ANN001
    page.goto(page.base + "/")
    page.fill("#login-username", username)
    page.fill("#login-password", password)
    page.click("#login-submit")
    page.wait_for_selector("#topbar:not([hidden])")


@pytest.fixture
def seeded(db, store, make_case, make_camera) -> dict:  # noqa: ANN001
    from api.auth import ensure_demo_users
    from urbaneye.db.models import CameraStatus

    users = {u.username: u for u in ensure_demo_users(db)}
    make_camera("cam-1")
    store.put("snapshots/cam-1.jpg", scene_jpeg("cam-1 live", w=960, h=540, seed=7))
    db.add(
        CameraStatus(
            camera_id="cam-1",
            worker_id="worker-a",
            state="online",
            input_fps=25.0,
            detect_fps=5.0,
            last_frame_at=dt.datetime.now(dt.UTC),
            snapshot_key="snapshots/cam-1.jpg",
        )
    )
    now = dt.datetime.now(dt.UTC)
    # earlier, decided cases at the same place (history panel, statistics)
    for days, status, reason in (
        (6, "closed", None),
        (5, "rejected", "permitted_vending"),
        (3, "accepted", None),
        (2, "rejected", "false_detection"),
        (1, "closed", None),
    ):
        make_case(
            status=status,
            reject_reason=reason,
            created_at=now - dt.timedelta(days=days, hours=2),
            evidence=False,
            reviewed_at=now - dt.timedelta(days=days, hours=1),
        )
    make_case(
        kind="exposed_garbage",
        status="confirmed",
        camera_id="cam-2",
        zone_id="z-b",
        created_at=now - dt.timedelta(days=4),
        evidence=False,
    )
    pending = [
        make_case(created_at=now - dt.timedelta(minutes=50 - i), escalation=esc, kind=kind, confidence=conf)
        for i, (esc, kind, conf) in enumerate(
            [
                ("yellow", "street_vending", 0.91),
                ("blue", "street_vending", 0.66),
                ("blue", "open_air_barbecue", 0.72),
                ("red", "street_vending", 0.88),
            ]
        )
    ]
    db.commit()
    return {"users": users, "pending": pending}


def test_review_three_cases_by_keyboard(page, seeded, db) -> None:  # noqa: ANN001
    from urbaneye.audit_verify import verify_chain
    from urbaneye.db.models import AuditLog, Case, Review

    a, b, c, d = seeded["pending"]
    demo = seeded["users"]["demo"]
    login(page, "demo", "demo-review")
    page.wait_for_selector(f"#queue-list li[data-id='{a.id}'].current")
    wait_js(
        page,
        "document.querySelectorAll('.frame img').length === 2 && "
        "[...document.querySelectorAll('.frame img')].every(i => i.complete && i.naturalWidth > 0)",
        "both evidence frames loaded",
    )
    page.wait_for_selector("#similar li >> text=已结案")
    wait_js(page, "document.getElementById('queue-total').textContent === '4'", "queue total 4")
    page.screenshot(path=ARTIFACTS / "01-queue.png")

    page.keyboard.press("y")  # confirm a
    page.wait_for_selector(f"#queue-list li[data-id='{b.id}'].current")
    page.keyboard.press("a")  # clean view: zone outline and box drawn over the frame
    page.wait_for_selector(".frame svg polygon.zone")
    page.screenshot(path=ARTIFACTS / "02-clean-view.png")
    page.keyboard.press("2")  # reject b: 合规经营
    page.wait_for_selector(f"#queue-list li[data-id='{c.id}'].current")
    page.keyboard.press("5")  # reject c: 其他 + note
    page.fill("#note-input", "画面为店内经营，非占道")
    page.screenshot(path=ARTIFACTS / "03-note.png")
    page.keyboard.press("Enter")
    page.wait_for_selector(f"#queue-list li[data-id='{d.id}'].current")

    def statuses() -> dict[str, str]:
        db.expire_all()
        return {x.id: x.status for x in db.scalars(select(Case).where(Case.id.in_([a.id, b.id, c.id])))}

    wait_for(
        lambda: statuses() == {a.id: "queued", b.id: "rejected", c.id: "rejected"},
        what="three decisions saved",
    )
    page.keyboard.press("u")  # undo the last decision (c)
    page.wait_for_selector(f"#queue-list li[data-id='{c.id}'].current")
    wait_for(lambda: statuses()[c.id] == "pending_review", what="undo saved")
    # the total follows the undo's refresh: wait for it rather than read it once
    wait_js(page, "document.getElementById('queue-total').textContent === '2'", "queue total 2 after the undo")
    page.screenshot(path=ARTIFACTS / "04-after-undo.png")

    db.expire_all()
    assert db.get(Case, b.id).reject_reason == "permitted_vending"
    reviews = db.scalars(
        select(Review).where(Review.case_id.in_([a.id, b.id, c.id])).order_by(Review.id)
    ).all()
    assert [(r.case_id, r.decision, r.reason) for r in reviews] == [
        (a.id, "confirm", None),
        (b.id, "reject", "permitted_vending"),
        (c.id, "reject", "other"),
        (c.id, "undo", None),
    ]
    assert all(r.user_id == demo.id for r in reviews) and all(r.created_at is not None for r in reviews)
    assert reviews[2].note == "画面为店内经营，非占道"
    assert all(r.duration_ms is not None and r.duration_ms >= 0 for r in reviews[:3])
    trail = db.scalars(
        select(AuditLog)
        .where(AuditLog.entity == "case", AuditLog.entity_id.in_([a.id, b.id, c.id]))
        .order_by(AuditLog.id)
    ).all()
    assert [(t.entity_id, t.from_status, t.to_status) for t in trail] == [
        (a.id, "pending_review", "confirmed"),
        (a.id, "confirmed", "queued"),
        (b.id, "pending_review", "rejected"),
        (c.id, "pending_review", "rejected"),
        (c.id, "rejected", "pending_review"),
    ]
    assert all(t.actor == f"user:{demo.id}" for t in trail)
    assert verify_chain(db)[1] == []


def test_admin_draws_zone_on_snapshot(page, seeded, db) -> None:  # noqa: ANN001
    from urbaneye.db.models import Zone

    login(page, "admin", "admin-demo")
    page.goto(page.base + "/ui/#/cameras")
    page.wait_for_selector(".cam-card >> text=在线")
    page.screenshot(path=ARTIFACTS / "05-cameras.png")
    page.click(".cam-card")
    wait_js(page, "document.querySelector('#snapshot')?.naturalWidth > 0", "the snapshot loaded")
    box = page.locator("#snapshot").bounding_box()

    def click_at(x: float, y: float) -> None:
        page.mouse.click(box["x"] + x * box["width"], box["y"] + y * box["height"])

    # a bow-tie first: the server refuses it and the form shows why
    page.click("#new-zone")
    for x, y in ((0.1, 0.1), (0.4, 0.35), (0.4, 0.1), (0.15, 0.4)):
        click_at(x, y)
    page.click("#close-zone")
    page.fill("#zone-id", "bad-one")
    page.click("#save-zone")
    page.wait_for_selector(".form-error >> text=多边形自相交")  # the server's reason, in Chinese
    page.screenshot(path=ARTIFACTS / "06-zone-error.png")
    page.click("text=取消")

    page.click("#new-zone")
    points = [(0.55, 0.55), (0.95, 0.55), (0.95, 0.9), (0.55, 0.9)]
    for x, y in points:
        click_at(x, y)
    page.screenshot(path=ARTIFACTS / "07-zone-drawing.png")
    click_at(*points[0])  # clicking the first vertex closes the polygon
    page.fill("#zone-id", "night-market")
    page.fill("#zone-name", "滨河夜市")
    page.select_option("#zone-kind", "allowed_vending")
    page.select_option("#zone-road", "lane")
    page.click("#save-zone")
    page.wait_for_selector("li[data-zone='night-market']")
    page.screenshot(path=ARTIFACTS / "08-zone-saved.png")

    db.expire_all()
    row = db.scalar(select(Zone).where(Zone.camera_id == "cam-1", Zone.zone_id == "night-market"))
    assert row is not None
    cfg = row.config
    assert (cfg["kind"], cfg["road_class"], cfg["name"]) == ("allowed_vending", "lane", "滨河夜市")
    assert len(cfg["polygon"]) == 4
    for (x, y), (px, py) in zip(points, cfg["polygon"], strict=True):
        assert abs(x - px) < 0.01 and abs(y - py) < 0.01
    assert db.scalar(select(Zone).where(Zone.zone_id == "bad-one")) is None


def test_statistics_page_draws_charts(page, seeded) -> None:  # noqa: ANN001
    login(page, "admin", "admin-demo")
    page.goto(page.base + "/ui/#/stats")
    page.wait_for_selector(".report >> text=受理")
    report = page.inner_text(".report")
    assert "受理 3件，办结 2件，办结率 66.7%" in report
    assert page.locator(".chart-svg").count() == 3
    assert page.locator(".chart-svg rect[fill]").count() >= 5  # stacked bars per day and kind
    assert page.locator(".chart-svg .bar").count() == 2  # precision bars: cam-1 and cam-2
    page.screenshot(path=ARTIFACTS / "09-stats.png", full_page=True)
