from __future__ import annotations

import datetime as dt

import jwt
import pytest
from sqlalchemy import func, select

from tests.api.conftest import PASSWORDS


def login(client, username: str, password: str):  # noqa: ANN001, ANN201
    return client.post("/api/v1/auth/login", data={"username": username, "password": password})


def test_login_issues_short_lived_token_for_me(client, users, api_settings) -> None:  # noqa: ANN001
    r = login(client, "reviewer1", PASSWORDS["reviewer"])
    assert r.status_code == 200, r.text
    body = r.json()
    claims = jwt.decode(body["access_token"], api_settings.secret_key, algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] == api_settings.access_token_ttl_s
    assert claims["role"] == "reviewer"
    me = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    assert me.json()["username"] == "reviewer1"
    assert "password" not in me.text and "argon2" not in me.text


def test_passwords_are_argon2_hashed(db, users) -> None:  # noqa: ANN001
    user = users.by_role["admin"]
    assert user.password_hash.startswith("$argon2")
    assert PASSWORDS["admin"] not in user.password_hash


def _throttle(db, key: str):  # noqa: ANN001, ANN202
    from urbaneye.db.models import LoginThrottle

    db.expire_all()
    return db.get(LoginThrottle, key)


def _age(db, key: str, seconds: float) -> None:  # noqa: ANN001
    """Pretend the last try of ``key`` was ``seconds`` ago (instead of sleeping through a wait)."""
    from urbaneye.db.models import LoginThrottle

    db.query(LoginThrottle).filter(LoginThrottle.key == key).update(
        {LoginThrottle.last_at: dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds)}
    )
    db.commit()


def test_failed_logins_wait_exponentially_then_are_forgotten(client, users, db, api_settings) -> None:  # noqa: ANN001
    key = "user:viewer1|testclient"  # the TestClient's peer address is 'testclient'
    for _ in range(api_settings.login_max_failures):
        assert login(client, "viewer1", "wrong-password").status_code == 401
    # even the right password waits (the pair is throttled, nothing is checked), with a Retry-After
    r = login(client, "viewer1", PASSWORDS["viewer"])
    assert r.status_code == 429
    assert int(r.headers["Retry-After"]) == 1  # first wait: 1 s
    assert "viewer1" in r.json()["detail"]
    assert _throttle(db, key).failures == api_settings.login_max_failures  # a refused try is not counted
    # other users are unaffected
    assert login(client, "admin1", PASSWORDS["admin"]).status_code == 200
    # each further failure doubles the wait: 1, 2, 4 s
    for wait_s in (1, 2, 4):
        _age(db, key, wait_s)
        assert login(client, "viewer1", "wrong-password").status_code == 401
        retry = login(client, "viewer1", PASSWORDS["viewer"])
        assert retry.status_code == 429 and int(retry.headers["Retry-After"]) == 2 * wait_s
    # never a hard lock: once the wait is over the right password works and clears the pair's count
    _age(db, key, 8)
    assert login(client, "viewer1", PASSWORDS["viewer"]).status_code == 200
    assert _throttle(db, key) is None
    # failures quiet for longer than login_lockout_s (beyond the wait) are forgotten
    for _ in range(api_settings.login_max_failures):
        assert login(client, "viewer1", "wrong-password").status_code == 401
    _age(db, key, api_settings.login_lockout_s + 2)
    assert login(client, "viewer1", "wrong-password").status_code == 401
    assert _throttle(db, key).failures == 1


def test_unknown_user_counts_as_failure(client, users, db) -> None:  # noqa: ANN001
    assert login(client, "nobody", "whatever-pass").status_code == 401
    assert _throttle(db, "user:nobody|testclient").failures == 1
    assert _throttle(db, "addr:testclient").failures == 1


@pytest.mark.parametrize(
    "token_of",
    [
        lambda s, u: "not-a-jwt",
        lambda s, u: jwt.encode(
            {"sub": u.id, "exp": dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)}, s.secret_key
        ),
        lambda s, u: jwt.encode(
            {"sub": u.id, "exp": dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)}, "other-key"
        ),
    ],
    ids=["garbage", "expired", "wrong-key"],
)
def test_bad_tokens_get_401(client, users, api_settings, token_of) -> None:  # noqa: ANN001
    token = token_of(api_settings, users.by_role["admin"])
    r = client.get("/api/v1/cases", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == "Bearer"


def test_deactivated_user_token_stops_working(client, users, db) -> None:  # noqa: ANN001
    assert client.get("/api/v1/cameras", headers=users.headers("service")).status_code == 200
    r = client.patch(
        f"/api/v1/users/{users.by_role['service'].id}",
        json={"is_active": False},
        headers=users.headers("admin"),
    )
    assert r.status_code == 200
    assert client.get("/api/v1/cameras", headers=users.headers("service")).status_code == 401


def test_service_tokens_only_for_service_users(client, users) -> None:  # noqa: ANN001
    svc = users.by_role["service"]
    r = client.post(
        f"/api/v1/users/{svc.id}/service-token", json={"ttl_s": 7 * 86400}, headers=users.headers("admin")
    )
    assert r.status_code == 200
    assert r.json()["kind"] == "service"
    assert (
        client.get(
            "/api/v1/models/active", headers={"Authorization": f"Bearer {r.json()['access_token']}"}
        ).status_code
        == 200
    )
    rev = users.by_role["reviewer"]
    r = client.post(f"/api/v1/users/{rev.id}/service-token", json={}, headers=users.headers("admin"))
    assert r.status_code == 409
    assert "service" in r.json()["detail"]


def test_demo_users_are_created_once(db) -> None:  # noqa: ANN001
    from api.auth import authenticate, ensure_demo_users
    from urbaneye.db.models import User
    from urbaneye.settings import get_settings

    ensure_demo_users(db)
    ensure_demo_users(db)
    assert db.scalar(select(func.count()).select_from(User)) == 2
    assert authenticate(db, "demo", "demo-review", "test", get_settings()).role == "reviewer"
    assert authenticate(db, "admin", "admin-demo", "test", get_settings()).role == "admin"
