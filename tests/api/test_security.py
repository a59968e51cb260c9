"""API security in-process (issue 16): what production refuses, demo users, token versions and kinds,
logout, audited user administration, undo ownership, camera sources and caps, the hotline callback's
settings, the UI without inline script. Server-level behaviour is in test_security_server.py."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from html.parser import HTMLParser

import jwt
import pytest
from sqlalchemy import select

from tests.api.conftest import PASSWORDS, SECRET
from urbaneye.settings import REPO_ROOT, Settings

STRONG = "s" * 48
#: A production configuration production accepts; each case below spoils one value.
GOOD_PRODUCTION = {
    "environment": "production",
    "secret_key": "k" * 48,
    "hotline_secret": "h" * 48,
    "s3_access_key": "urbaneye",
    "s3_secret_key": "m" * 40,
    **({"audit_key": "a" * 48} if "audit_key" in Settings.model_fields else {}),
}


def login(client, username: str, password: str):  # noqa: ANN001, ANN201
    return client.post("/api/v1/auth/login", data={"username": username, "password": password})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- what production refuses ---------------------------------------------------------------------


def test_good_production_settings_are_accepted() -> None:
    assert Settings(**GOOD_PRODUCTION).environment == "production"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("secret_key", ""),
        ("secret_key", "x"),
        ("secret_key", "dev-insecure-change-me"),
        ("secret_key", "k" * 31),
        ("secret_key", "changeme"),
        ("hotline_secret", ""),
        ("hotline_secret", "h"),
        ("s3_access_key", "minioadmin"),
        ("s3_secret_key", "minioadmin"),
    ],
)
def test_production_refuses_weak_secrets_naming_the_setting(field: str, value: str) -> None:
    with pytest.raises(ValueError) as info:
        Settings(**{**GOOD_PRODUCTION, field: value})
    var = f"URBANEYE_{field.upper()}"
    line = next(line for line in str(info.value).splitlines() if var in line)
    assert "secrets.token_urlsafe" in line  # how to make a good one, on the same line


def test_development_keeps_its_defaults() -> None:
    assert Settings(environment="development").s3_access_key == "minioadmin"


def _cli(*args: str, tmp_path, **env: str) -> subprocess.CompletedProcess:  # noqa: ANN001
    base = {k: v for k, v in os.environ.items() if not k.startswith("URBANEYE_")}
    base.update(URBANEYE_DATA_DIR=str(tmp_path / "var"), **env)
    return subprocess.run(
        [sys.executable, "-m", "urbaneye.cli", *args],
        cwd=REPO_ROOT,
        env=base,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _env(settings: dict) -> dict[str, str]:
    return {f"URBANEYE_{k.upper()}": str(v) for k, v in settings.items()}


def test_serve_refuses_to_start_in_production_with_a_short_secret(tmp_path) -> None:  # noqa: ANN001
    r = _cli("serve", tmp_path=tmp_path, **_env({**GOOD_PRODUCTION, "secret_key": "short"}))
    assert r.returncode == 2
    assert "URBANEYE_SECRET_KEY is shorter than 32 bytes" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("args", [("serve", "--demo-users"), ("run", "--demo")])
def test_demo_users_are_refused_in_production(args: tuple[str, ...], tmp_path) -> None:  # noqa: ANN001
    r = _cli(*args, tmp_path=tmp_path, **_env(GOOD_PRODUCTION))
    assert r.returncode != 0
    assert "demo users (admin/admin-demo) are never created in production" in r.stderr
    assert not (tmp_path / "var" / "urbaneye.db").exists()  # refused before anything was set up


def test_ensure_demo_users_refuses_production(db) -> None:  # noqa: ANN001
    from api.auth import DemoUsersRefused, ensure_demo_users
    from urbaneye.db.models import User

    with pytest.raises(DemoUsersRefused):
        ensure_demo_users(db, Settings(**GOOD_PRODUCTION))
    assert db.scalar(select(User).where(User.username == "admin")) is None


# --- tokens ---------------------------------------------------------------------------------------


def test_admin_password_reset_revokes_the_users_tokens(client, users) -> None:  # noqa: ANN001
    viewer = users.by_role["viewer"]
    old = login(client, "viewer1", PASSWORDS["viewer"]).json()["access_token"]
    assert client.get("/api/v1/auth/me", headers=bearer(old)).status_code == 200
    r = client.patch(
        f"/api/v1/users/{viewer.id}", json={"password": "brand-new-pass"}, headers=users.headers("admin")
    )
    assert r.status_code == 200
    r = client.get("/api/v1/auth/me", headers=bearer(old))
    assert r.status_code == 401 and "revoked" in r.json()["detail"]
    assert client.get("/api/v1/auth/me", headers=users.headers("viewer")).status_code == 401
    assert login(client, "viewer1", "brand-new-pass").status_code == 200


def test_changing_ones_password_revokes_older_tokens(client, users) -> None:  # noqa: ANN001
    old = users.tokens["reviewer"]
    wrong = client.post(
        "/api/v1/auth/password",
        json={"current_password": "not-it", "new_password": "another-pass-2"},
        headers=bearer(old),
    )
    assert wrong.status_code == 403
    r = client.post(
        "/api/v1/auth/password",
        json={"current_password": PASSWORDS["reviewer"], "new_password": "another-pass-2"},
        headers=bearer(old),
    )
    assert r.status_code == 200, r.text
    assert client.get("/api/v1/auth/me", headers=bearer(old)).status_code == 401
    assert client.get("/api/v1/auth/me", headers=bearer(r.json()["access_token"])).status_code == 200


def test_logout_ends_the_session(client, users) -> None:  # noqa: ANN001
    token = login(client, "reviewer1", PASSWORDS["reviewer"]).json()["access_token"]
    assert client.post("/api/v1/auth/logout", headers=bearer(token)).status_code == 204
    assert client.get("/api/v1/cases", headers=bearer(token)).status_code == 401
    assert login(client, "reviewer1", PASSWORDS["reviewer"]).status_code == 200


def test_a_service_token_is_never_a_user_session(client, users) -> None:  # noqa: ANN001
    r = client.post("/api/v1/auth/logout", headers=users.headers("service"))
    assert r.status_code == 403 and "service token" in r.json()["detail"]
    r = client.post(
        "/api/v1/auth/password",
        json={"current_password": PASSWORDS["service"], "new_password": "x" * 12},
        headers=users.headers("service"),
    )
    assert r.status_code == 403


def test_promoting_a_service_user_does_not_make_its_token_admin(client, users) -> None:  # noqa: ANN001
    svc = users.by_role["service"]
    token = client.post(
        f"/api/v1/users/{svc.id}/service-token", json={"ttl_s": 366 * 86400}, headers=users.headers("admin")
    ).json()["access_token"]
    r = client.patch(f"/api/v1/users/{svc.id}", json={"role": "admin"}, headers=users.headers("admin"))
    assert r.status_code == 200
    for path in ("/api/v1/users", "/api/v1/cameras"):
        r = client.get(path, headers=bearer(token))
        assert r.status_code == 401, path
        assert "service token" in r.json()["detail"]
    # the person behind it logs in with the password to act as admin
    access = login(client, "service1", PASSWORDS["service"]).json()["access_token"]
    assert client.get("/api/v1/users", headers=bearer(access)).status_code == 200


@pytest.mark.parametrize("missing", ["typ", "ver"])
def test_a_token_without_kind_or_version_is_refused(client, users, missing: str) -> None:  # noqa: ANN001
    claims = {
        "sub": users.by_role["admin"].id,
        "typ": "access",
        "ver": 0,
        "exp": dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
    }
    del claims[missing]
    token = jwt.encode(claims, SECRET, algorithm="HS256")
    assert client.get("/api/v1/users", headers=bearer(token)).status_code == 401


def test_user_administration_is_audited(client, users, db) -> None:  # noqa: ANN001
    from urbaneye.db.models import AuditLog

    h = users.headers("admin")
    new = client.post(
        "/api/v1/users",
        json={"username": "op7", "password": "op7-initial", "role": "viewer", "display_name": "值班"},
        headers=h,
    ).json()
    client.patch(f"/api/v1/users/{new['id']}", json={"role": "reviewer"}, headers=h)
    client.patch(f"/api/v1/users/{new['id']}", json={"is_active": False}, headers=h)
    client.patch(f"/api/v1/users/{new['id']}", json={"password": "op7-reset-pw"}, headers=h)
    svc = users.by_role["service"]
    client.post(f"/api/v1/users/{svc.id}/service-token", json={}, headers=h)
    db.expire_all()
    rows = db.scalars(select(AuditLog).where(AuditLog.entity == "user").order_by(AuditLog.id)).all()
    assert [(r.actor, r.action, r.entity_id) for r in rows] == [
        ("user:admin1", "create_user", new["id"]),
        ("user:admin1", "update_user", new["id"]),
        ("user:admin1", "update_user", new["id"]),
        ("user:admin1", "update_user", new["id"]),
        ("user:admin1", "issue_service_token", svc.id),
    ]
    assert rows[1].detail["role"] == {"from": "viewer", "to": "reviewer"}
    assert rows[2].detail["is_active"] == {"from": True, "to": False}
    assert "tokens revoked" in rows[3].detail["password"]
    text = json.dumps([r.detail for r in rows])
    assert "op7-initial" not in text and "op7-reset-pw" not in text


# --- undo ownership -------------------------------------------------------------------------------


def test_a_reviewer_undoes_only_their_own_decision(client, users, db, make_case) -> None:  # noqa: ANN001
    from api.auth import create_user, issue_token

    other = create_user(db, "reviewer2", "review-pass-2", "reviewer")
    db.commit()
    other_h = bearer(issue_token(other, client.app.state.settings).token)
    case = make_case()
    assert (
        client.post(
            f"/api/v1/cases/{case.id}/verify", json={"decision": "confirm"}, headers=users.headers("reviewer")
        ).status_code
        == 200
    )
    r = client.post(f"/api/v1/cases/{case.id}/undo", headers=other_h)
    assert r.status_code == 403 and "only the reviewer" in r.json()["detail"]
    assert client.post(f"/api/v1/cases/{case.id}/undo", headers=users.headers("reviewer")).status_code == 200
    # the other reviewer decides now; an admin may undo anyone's decision
    client.post(f"/api/v1/cases/{case.id}/verify", json={"decision": "confirm"}, headers=other_h)
    assert client.post(f"/api/v1/cases/{case.id}/undo", headers=users.headers("admin")).status_code == 200


# --- cameras -------------------------------------------------------------------------------------

CAMERA = {
    "id": "cam-s",
    "name": "人民路",
    "source": {"url": "rtsp://10.0.0.9/ch1?pwd=abc", "username": "u", "password": "hunter2-secret"},
}


def test_source_urls_are_shown_to_admins_only(client, users) -> None:  # noqa: ANN001
    assert client.post("/api/v1/cameras", json=CAMERA, headers=users.headers("admin")).status_code == 201
    for role in ("viewer", "reviewer", "service"):
        src = client.get("/api/v1/cameras/cam-s", headers=users.headers(role)).json()["source"]
        assert src["url"] == "" and src["has_credentials"] is True, role
        listed = client.get("/api/v1/cameras", headers=users.headers(role)).json()["data"][0]["source"]
        assert listed["url"] == "", role
    src = client.get("/api/v1/cameras/cam-s", headers=users.headers("admin")).json()["source"]
    assert src["url"] == "rtsp://10.0.0.9/ch1?pwd=***"


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "/etc/passwd",
        "/dev/video0",
        "0",
        "gopher://10.0.0.9/x",
        "http://169.254.169.254/latest/meta-data/",
        "http://2852039166/latest/meta-data/",  # the same address, written as one number
        "http://[fe80::1]/x",
        "http://metadata.google.internal/computeMetadata/v1/",
    ],
)
def test_camera_sources_outside_the_allowed_schemes_or_link_local_are_refused(
    client, users, url: str
) -> None:  # noqa: ANN001
    r = client.post(
        "/api/v1/cameras", json={**CAMERA, "source": {"url": url}}, headers=users.headers("admin")
    )
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["body", "source", "url"]


def test_production_limits_camera_sources_to_the_camera_networks(api_settings, users, db) -> None:  # noqa: ANN001
    from fastapi.testclient import TestClient

    from api.app import create_app

    settings = Settings(
        **{**GOOD_PRODUCTION, "secret_key": SECRET},
        database_url=api_settings.database_url,
        data_dir=api_settings.data_dir,
        camera_networks="10.20.0.0/16",
    )
    with TestClient(create_app(settings)) as client:
        h = users.headers("admin")
        for url in ("rtsp://127.0.0.1/x", "rtsp://localhost/x", "rtsp://10.0.0.9/x", "rtsp://192.168.1.5/x"):
            r = client.post("/api/v1/cameras", json={**CAMERA, "source": {"url": url}}, headers=h)
            assert r.status_code == 422 and "URBANEYE_CAMERA_NETWORKS" in r.text, url
        ok = client.post(
            "/api/v1/cameras", json={**CAMERA, "source": {"url": "rtsp://10.20.3.4/x"}}, headers=h
        )
        assert ok.status_code == 201, ok.text


def _square(n: int) -> list[list[float]]:
    """A convex polygon of ``n`` points on a circle (valid for any n >= 3)."""
    import math

    return [
        [0.5 + 0.4 * math.cos(2 * math.pi * i / n), 0.5 + 0.4 * math.sin(2 * math.pi * i / n)]
        for i in range(n)
    ]


def test_zone_polygons_and_fields_are_capped_by_the_api(client, users, make_camera) -> None:  # noqa: ANN001
    from api.schemas.cameras import MAX_ZONE_POINTS

    make_camera("cam-z")
    h = users.headers("admin")
    zone = {"id": "big", "kind": "no_vending"}
    ok = client.put(
        "/api/v1/cameras/cam-z/zones/big", json={**zone, "polygon": _square(MAX_ZONE_POINTS)}, headers=h
    )
    assert ok.status_code == 200, ok.text
    too_many = client.put(
        "/api/v1/cameras/cam-z/zones/big", json={**zone, "polygon": _square(MAX_ZONE_POINTS + 1)}, headers=h
    )
    assert too_many.status_code == 422 and too_many.json()["detail"][0]["loc"][-1] == "polygon"
    camera = {**CAMERA, "id": "cam-g"}
    for field, value in (("group", "g" * 65), ("timezone", "A" * 65)):
        r = client.post("/api/v1/cameras", json={**camera, field: value}, headers=h)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == field, r.text
    r = client.post(
        "/api/v1/cameras",
        json={**camera, "source": {"url": "rtsp://10.0.0.9/" + "x" * 3000}},
        headers=h,
    )
    assert r.status_code == 422


# --- the hotline callback -------------------------------------------------------------------------


def test_hotline_callback_uses_the_apps_settings(api_settings, settings_env, users) -> None:  # noqa: ANN001
    from fastapi.testclient import TestClient

    from api.app import create_app
    from urbaneye.hotline.signing import signed_headers

    settings_env(hotline_secret="environment-secret-" + "e" * 30)
    app_secret = "app-secret-" + "a" * 40
    app = create_app(api_settings.model_copy(update={"hotline_secret": app_secret}))
    body = json.dumps({"case_id": "c" * 32, "status": "受理"}).encode()
    with TestClient(app) as client:
        r = client.post("/api/v1/hotline/callback", content=body, headers=signed_headers(app_secret, body))
        assert r.status_code == 404, r.text  # signature accepted; the case does not exist
        env_signed = signed_headers("environment-secret-" + "e" * 30, body)
        assert client.post("/api/v1/hotline/callback", content=body, headers=env_signed).status_code == 401


def test_hotline_callback_with_an_empty_secret_is_refused(api_settings, users) -> None:  # noqa: ANN001
    from fastapi.testclient import TestClient

    from api.app import create_app
    from urbaneye.hotline.signing import signed_headers

    app = create_app(api_settings.model_copy(update={"hotline_secret": ""}))
    body = json.dumps({"case_id": "c" * 32, "status": "受理"}).encode()
    with TestClient(app) as client:
        r = client.post("/api/v1/hotline/callback", content=body, headers=signed_headers("", body))
    assert r.status_code == 401 and "URBANEYE_HOTLINE_SECRET" in r.json()["detail"]


# --- the UI and the auth-before-body list ---------------------------------------------------------


class _InlineScript(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name.startswith("on") or (value or "").strip().lower().startswith("javascript:"):
                self.problems.append(f"<{tag} {name}=...>")
        if tag == "script":
            self._in_script = True
            if not dict(attrs).get("src"):
                self.problems.append("<script> without src")

    def handle_endtag(self, tag: str) -> None:
        self._in_script = self._in_script and tag != "script"

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.problems.append("inline script text")


def test_ui_has_no_inline_script_so_its_csp_can_forbid_it() -> None:
    from api.app import STATIC_DIR

    parser = _InlineScript()
    parser.feed((STATIC_DIR / "index.html").read_text(encoding="utf-8"))
    assert parser.problems == []
    for js in STATIC_DIR.glob("*.js"):
        text = js.read_text(encoding="utf-8")
        # style attributes would need 'unsafe-inline' in style-src; handlers set in markup, likewise
        assert "style:" not in text and "innerHTML" not in text, js.name


def test_every_route_taking_a_body_without_a_token_is_listed_public() -> None:
    from api.app import PUBLIC_BODY_PATHS, create_app, iter_api_routes
    from api.deps import get_current_user

    def needs_token(dependant) -> bool:  # noqa: ANN001
        stack = [dependant]
        while stack:
            dep = stack.pop()
            if dep.call is get_current_user:
                return True
            stack.extend(dep.dependencies)
        return False

    app = create_app(Settings(environment="test", database_url="sqlite://"))
    open_with_body = {
        r.path
        for r in iter_api_routes(app)
        if r.methods & {"POST", "PUT", "PATCH", "DELETE"} and not needs_token(r.dependant)
    }
    assert open_with_body == PUBLIC_BODY_PATHS
