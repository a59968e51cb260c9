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


def test_failed_logins_lock_out_then_expire(client, users, db, api_settings, settings_env) -> None:  # noqa: ANN001
    from urbaneye.db.models import LoginAttempt

    for _ in range(api_settings.login_max_failures):
        assert login(client, "viewer1", "wrong-password").status_code == 401
    # even the right password is refused while locked out, with a Retry-After
    r = login(client, "viewer1", PASSWORDS["viewer"])
    assert r.status_code == 429
    assert 1 <= int(r.headers["Retry-After"]) <= api_settings.login_lockout_s + 1
    assert "viewer1" in r.json()["detail"]
    # other users are unaffected
    assert login(client, "admin1", PASSWORDS["admin"]).status_code == 200
    # once the failures are older than the lockout window, the right password works and clears them
    db.query(LoginAttempt).update({LoginAttempt.at: dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)})
    db.commit()
    assert login(client, "viewer1", PASSWORDS["viewer"]).status_code == 200
    assert (
        db.scalar(select(func.count()).select_from(LoginAttempt).where(LoginAttempt.username == "viewer1"))
        == 0
    )


def test_unknown_user_counts_as_failure(client, users, db) -> None:  # noqa: ANN001
    from urbaneye.db.models import LoginAttempt

    assert login(client, "nobody", "whatever-pass").status_code == 401
    assert (
        db.scalar(select(func.count()).select_from(LoginAttempt).where(LoginAttempt.username == "nobody"))
        == 1
    )


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
