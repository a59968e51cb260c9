"""Claiming (issue 18): a pending case is leased to one reviewer; others neither see it in their queue nor
decide it; conflicts answer 409 with Chinese text and a stable code. Times carry their offset."""

from __future__ import annotations

import datetime as dt
import threading

from sqlalchemy import select


def _reviewer2(db, api_settings):  # noqa: ANN001, ANN202
    from api.auth import create_user, issue_token
    from urbaneye.db.models import Role

    user = create_user(db, "reviewer2", "review-pass-2", Role.REVIEWER, "审核员二")
    db.commit()
    return user, {"Authorization": f"Bearer {issue_token(user, api_settings).token}"}


def test_times_carry_their_offset_and_the_camera_zone(client, users, make_case, make_camera) -> None:  # noqa: ANN001
    make_camera("cam-1")
    case = make_case(created_at=dt.datetime(2026, 12, 3, 13, 0, 11, tzinfo=dt.UTC))
    body = client.get(f"/api/v1/cases/{case.id}", headers=users.headers("viewer")).json()
    assert body["created_at"] == "2026-12-03T13:00:11Z"
    assert body["started_at"] == "2026-12-03T12:55:11Z"
    assert all(ev["frame_ts"].endswith("Z") for ev in body["evidence"])
    assert (body["camera_timezone"], body["camera_name"]) == ("Asia/Shanghai", "人民路 cam-1")
    listed = client.get("/api/v1/cases", headers=users.headers("viewer")).json()["data"][0]
    assert listed["updated_at"].endswith("Z") and listed["camera_timezone"] == "Asia/Shanghai"


def test_a_claimed_case_is_nobody_elses(client, users, db, api_settings, make_case) -> None:  # noqa: ANN001
    a, b = make_case(evidence=False), make_case(evidence=False)
    h1 = users.headers("reviewer")
    _, h2 = _reviewer2(db, api_settings)
    queue = {"status": "pending_review", "unclaimed": "true"}

    r = client.post(f"/api/v1/cases/{a.id}/claim", headers=h1)
    assert r.status_code == 200 and r.json()["claimed"] and r.json()["expires_at"].endswith("Z")
    assert client.post(f"/api/v1/cases/{a.id}/claim", headers=h1).json()["claimed"]  # extends, still mine
    taken = client.post(f"/api/v1/cases/{a.id}/claim", headers=h2).json()
    assert not taken["claimed"] and taken["code"] == "case_claimed" and "审核中" in taken["detail"]
    assert [c["id"] for c in client.get("/api/v1/cases", params=queue, headers=h2).json()["data"]] == [b.id]
    assert len(client.get("/api/v1/cases", params=queue, headers=h1).json()["data"]) == 2

    refused = client.post(f"/api/v1/cases/{a.id}/verify", json={"decision": "confirm"}, headers=h2)
    assert refused.status_code == 409 and refused.headers["X-Error-Code"] == "case_claimed"

    assert client.delete(f"/api/v1/cases/{a.id}/claim", headers=h1).status_code == 204  # skip: given back
    assert client.post(f"/api/v1/cases/{a.id}/claim", headers=h2).json()["claimed"]
    assert (
        client.post(f"/api/v1/cases/{a.id}/verify", json={"decision": "confirm"}, headers=h2).status_code
        == 200
    )
    late = client.post(f"/api/v1/cases/{a.id}/verify", json={"decision": "confirm"}, headers=h1)
    assert late.status_code == 409 and late.headers["X-Error-Code"] == "case_decided"
    assert "已确认" in late.json()["detail"] or "待推送" in late.json()["detail"]
    late_claim = client.post(f"/api/v1/cases/{a.id}/claim", headers=h1).json()
    assert not late_claim["claimed"] and late_claim["code"] == "case_decided"


def test_an_expired_claim_and_logout_give_the_case_back(client, users, db, api_settings, make_case) -> None:  # noqa: ANN001
    from urbaneye.db.models import CaseClaim

    a = make_case(evidence=False)
    h1 = users.headers("reviewer")
    user2, h2 = _reviewer2(db, api_settings)
    assert client.post(f"/api/v1/cases/{a.id}/claim", headers=h2).json()["claimed"]
    db.expire_all()
    claim = db.get(CaseClaim, a.id)
    claim.expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    db.commit()
    assert client.post(f"/api/v1/cases/{a.id}/claim", headers=h1).json()["claimed"]  # lapsed: taken over
    assert client.post("/api/v1/auth/logout", headers=h1).status_code == 204
    db.expire_all()
    assert db.scalars(select(CaseClaim)).all() == []
    assert client.post(f"/api/v1/cases/{a.id}/claim", headers=h2).json()["claimed"]
    assert user2.id == db.get(CaseClaim, a.id).user_id


def test_racing_claims_have_one_winner(app, db, users, make_case) -> None:  # noqa: ANN001
    """Two reviewers claim the same cases at the same instant, each in its own connection (PostgreSQL)."""
    from urbaneye.cases.claims import try_claim
    from urbaneye.db.models import utcnow

    cases = [make_case(evidence=False) for _ in range(8)]
    ids = {name: users.by_role[name].id for name in ("reviewer", "admin")}
    won: dict[str, list[str]] = {name: [] for name in ids}
    barrier = threading.Barrier(2)

    def claim_all(name: str) -> None:
        with app.state.sessionmaker() as session:
            for case in cases:
                barrier.wait(10)
                if try_claim(session, case.id, ids[name], utcnow()):
                    won[name].append(case.id)
                session.commit()

    threads = [threading.Thread(target=claim_all, args=(n,)) for n in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(won["reviewer"] + won["admin"]) == sorted(c.id for c in cases)
    assert not set(won["reviewer"]) & set(won["admin"])


def test_the_live_stream_opens_only_with_a_ticket(client, users) -> None:  # noqa: ANN001
    """EventSource sends no headers: the stream takes a one-minute ticket, never the session token."""
    assert client.get("/api/v1/live/events").status_code == 401
    session_token = users.headers("reviewer")["Authorization"].removeprefix("Bearer ")
    refused = client.get("/api/v1/live/events", params={"token": session_token})
    assert refused.status_code == 401 and "票据" in refused.json()["detail"]
    ticket = client.post("/api/v1/live/ticket", headers=users.headers("viewer")).json()
    assert ticket["expires_at"].endswith("Z")
    # the ticket opens the stream and nothing else
    assert (
        client.get("/api/v1/cases", headers={"Authorization": f"Bearer {ticket['token']}"}).status_code == 401
    )
    assert client.post("/api/v1/live/ticket", headers=users.headers("service")).status_code == 403


def test_the_queue_state_changes_with_a_new_case_and_a_claim(db, users, make_case) -> None:  # noqa: ANN001
    from api.routes.live import read_state
    from urbaneye.cases.claims import try_claim
    from urbaneye.db.models import utcnow

    before = read_state(db, utcnow())
    case = make_case(evidence=False)
    after_case = read_state(db, utcnow())
    assert after_case.pending == before.pending + 1 and after_case != before
    assert try_claim(db, case.id, users.by_role["reviewer"].id, utcnow())
    db.commit()
    after_claim = read_state(db, utcnow())
    assert after_claim.claims == after_case.claims + 1
