"""The demo's loop on accelerated time (issue 18 item 5): ``urbaneye run --demo``'s start-up piece
(``app.run.start_demo_hotline``) sets demo keys and the DEMO hotline; a confirmed case is pushed by the real
outbox delivery, and the demo hotline walks it to 结案 through the API's real signed callback; the
statistics read 受理/办结 with a non-zero 办结率."""

from __future__ import annotations

import datetime as dt
import json

import httpx
from sqlalchemy import select

from tests.conftest import free_port
from tests.waiting import wait_for
from urbaneye.db.models import Case, CaseStatus, Outbox
from urbaneye.hotline.demo_receiver import DemoHotline
from urbaneye.hotline.signing import IDEMPOTENCY_HEADER, signed_headers


def test_demo_hotline_closes_a_confirmed_case_through_the_signed_callback(
    api_settings, settings_env, make_case, db, live_server
):  # noqa: ANN001
    from api.app import create_app
    from api.auth import create_user, issue_token
    from app.run import DEMO_PUSH_POLICY, DEMO_SECRET, start_demo_hotline
    from urbaneye.cases import service
    from urbaneye.hotline.delivery import deliver_outbox
    from urbaneye.hotline.demo_receiver import DEMO_STEPS, DemoHotlineTimings
    from urbaneye.settings import MIN_SECRET_BYTES

    # the demo on a fresh clone: default (short) keys, no hotline configured
    short = settings_env(secret_key="short-key", hotline_secret="short-key", hotline_url="", push_policy="")
    port = free_port()
    settings, hotline = start_demo_hotline(short, port, DemoHotlineTimings((0.1, 0.2, 0.3, 0.4, 0.5)))
    assert hotline is not None
    try:
        assert settings.secret_key == settings.hotline_secret == DEMO_SECRET
        assert len(DEMO_SECRET.encode()) >= MIN_SECRET_BYTES  # no short-key warning at each demo login
        assert settings.hotline_url == hotline.url
        assert settings.push_policy == DEMO_PUSH_POLICY  # the demo closes a barbecue case on its own
        base = live_server(create_app(settings), port=port)

        case = make_case(status="pending_review", created_at=dt.datetime.now(dt.UTC))
        service.review_case(db, case.id, "u1", "confirm")
        db.commit()
        outbox_id = db.scalar(select(Outbox.id).where(Outbox.case_id == case.id))
        assert deliver_outbox(outbox_id) == "sent"  # the real push, signed, to the demo hotline

        def status() -> str:
            db.expire_all()
            return db.get(Case, case.id).status

        wait_for(lambda: status() == CaseStatus.CLOSED, timeout_s=60, what="the demo hotline closes the case")
        # the demo hotline notes a callback once the API has answered it, a moment after the case changed
        wait_for(
            lambda: [s for c, s in hotline.callbacks_sent if c == case.id] == list(DEMO_STEPS),
            what="each step's callback acknowledged by the API, in order",
        )
        assert db.get(Case, case.id).hotline_ref.startswith("DEMO-")

        admin = create_user(db, "demo-admin", "demo-admin-pass-1", "admin", "admin")
        db.commit()
        token = issue_token(admin, settings).token
        r = httpx.get(
            f"{base}/api/v1/stats",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        stats = r.json()["totals"]
        assert stats["received"] >= 1 and stats["closed"] >= 1 and stats["closure_rate"] > 0
    finally:
        hotline.stop()


def test_demo_hotline_refuses_an_unsigned_push(settings_env):  # noqa: ANN001
    hotline = DemoHotline("x" * 40, "http://127.0.0.1:9/unused")
    url = hotline.start()
    try:
        r = httpx.post(url, content=b"{}", headers={"Idempotency-Key": "c1"}, timeout=10)
        assert r.status_code == 401
        assert hotline.received == {}
    finally:
        hotline.stop()


def test_demo_hotline_notes_a_recheck_report_without_steps() -> None:
    secret = "x" * 40
    hotline = DemoHotline(secret, "http://127.0.0.1:9/unused")
    url = hotline.start()
    try:
        report = {
            "message": "recheck",
            "case_id": "c1",
            "recheck_id": "r1",
            "result": "cleared",
            "result_zh": "已清除",
        }
        body = json.dumps(report, ensure_ascii=False).encode()
        for _ in range(2):  # a repeat (the outbox's retry) is the same report
            headers = {IDEMPOTENCY_HEADER: "recheck:r1", **signed_headers(secret, body)}
            r = httpx.post(url, content=body, headers=headers, timeout=10)
            assert r.status_code == 200, r.text
            assert r.json() == {"ref": "DEMO-RECHECK-000001"}
        assert hotline.rechecks == ["recheck:r1"]
        assert hotline.received == {}  # no case taken: no 受理..结案 steps for a report
    finally:
        hotline.stop()
