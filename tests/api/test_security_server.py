"""API security against a real uvicorn process (issue 16): body limits before the body is read, auth
before the body, login throttling per (username, address) and per address from two loopback
addresses (127.0.0.1 and 127.0.0.2), trusted proxies, security headers, and no evidence signatures
in the access log."""

from __future__ import annotations

import contextlib
import io
import logging
import socket
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import select

from tests.api.conftest import PASSWORDS, SECRET, app_users

OTHER_ADDRESS = "127.0.0.2"  # loopback too: a second client address without a second machine


def client_from(base: str, address: str = "127.0.0.1") -> httpx.Client:
    return httpx.Client(
        base_url=base, transport=httpx.HTTPTransport(local_address=address), timeout=30, trust_env=False
    )


def raw_request(base: str, head: str, body: bytes = b"") -> tuple[int, bytes]:
    """Send ``head`` (request line + headers, no blank line) and ``body`` on a plain socket; return the
    status and the response. Sending may fail once the server has answered and closed: that is fine,
    the answer is still read."""
    url = urlsplit(base)
    with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(head.encode() + b"\r\n\r\n" + body)
        data = b""
        while not _complete(data):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    assert data.startswith(b"HTTP/1.1 "), data[:200]
    return int(data.split(b" ", 2)[1]), data


def _complete(response: bytes) -> bool:
    head, sep, body = response.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.lower().split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return len(body) >= int(line.split(b":", 1)[1])
    return False  # no length: read until the server closes


def chunked(payload: bytes, size: int = 16384) -> bytes:
    parts = [
        b"%x\r\n%s\r\n" % (len(payload[i : i + size]), payload[i : i + size])
        for i in range(0, len(payload), size)
    ]
    return b"".join(parts) + b"0\r\n\r\n"


@pytest.fixture
def served(app, live_server) -> tuple[str, object]:  # noqa: ANN001
    users = app_users(app)
    return live_server(app), users


# --- body size limits ---------------------------------------------------------------------------


def test_content_length_over_the_limit_is_refused_before_the_body_is_sent(served, api_settings) -> None:  # noqa: ANN001
    base, users = served
    token = users.tokens["reviewer"]
    # 1 GB announced, not a byte sent: the answer comes without waiting for the body
    status, data = raw_request(
        base,
        "POST /api/v1/cases/verify-bulk HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {token}\r\nContent-Length: 1000000000",
    )
    assert status == 413
    assert str(api_settings.max_body_bytes).encode() in data
    # the public hotline callback has its own, smaller limit (64 KiB)
    status, _ = raw_request(
        base,
        "POST /api/v1/hotline/callback HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "X-UrbanEye-Signature: sha256=00\r\nX-UrbanEye-Timestamp: 1\r\nContent-Length: 70000",
    )
    assert status == 413


@pytest.mark.parametrize(
    ("path", "over_bytes", "signed"),
    [
        ("/api/v1/cases/verify-bulk", (1 << 20) + 4096, False),
        ("/api/v1/hotline/callback", 65536 + 4096, True),
    ],
)
def test_chunked_body_is_cut_off_at_the_limit(served, path: str, over_bytes: int, signed: bool) -> None:  # noqa: ANN001
    base, users = served
    headers = (
        "X-UrbanEye-Signature: sha256=00\r\nX-UrbanEye-Timestamp: 1"
        if signed
        else (f"Authorization: Bearer {users.tokens['reviewer']}")
    )
    status, _ = raw_request(
        base,
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n{headers}",
        chunked(b"[" + b" " * over_bytes + b"]"),
    )
    assert status == 413


def test_a_body_under_the_limit_still_works(served, make_case) -> None:  # noqa: ANN001
    base, users = served
    case = make_case()
    with client_from(base) as c:
        r = c.post(
            "/api/v1/cases/verify-bulk",
            json={"case_ids": [case.id], "decision": "confirm"},
            headers=users.headers("reviewer"),
        )
    assert r.status_code == 200, r.text
    assert r.json()["succeeded"] == 1


def test_no_token_is_refused_before_the_body_is_read(served) -> None:  # noqa: ANN001
    base, _ = served
    # under the size limit, but nothing is sent after the headers: only a refusal that does not read
    # the body can answer
    for auth in ("", "Authorization: Bearer not-a-jwt\r\n"):
        status, data = raw_request(
            base,
            f"POST /api/v1/cases/verify-bulk HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\n"
            "Content-Length: 500000",
        )
        assert status == 401, data
    # the hotline callback without its signature headers, likewise
    status, _ = raw_request(
        base,
        "POST /api/v1/hotline/callback HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 60000",
    )
    assert status == 401


# --- login throttling ----------------------------------------------------------------------------


def _login(c: httpx.Client, username: str, password: str, **headers: str) -> httpx.Response:
    return c.post("/api/v1/auth/login", data={"username": username, "password": password}, headers=headers)


def test_failures_from_one_address_never_lock_out_another(served, api_settings) -> None:  # noqa: ANN001
    base, _ = served
    with client_from(base, OTHER_ADDRESS) as attacker, client_from(base) as owner:
        for _ in range(api_settings.login_max_failures):
            assert _login(attacker, "admin1", "guess-guess").status_code == 401
        r = _login(attacker, "admin1", PASSWORDS["admin"])
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
        assert OTHER_ADDRESS in r.json()["detail"]
        # the rightful admin, from their own address, is not affected
        assert _login(owner, "admin1", PASSWORDS["admin"]).status_code == 200


@pytest.fixture
def app_with(api_settings, settings_env):  # noqa: ANN001, ANN201
    """An app on the test database with some settings changed."""
    from api.app import create_app

    def make(**overrides: object):  # noqa: ANN202
        return create_app(settings_env(**overrides))

    return make


def test_one_address_spraying_usernames_is_throttled(app_with, live_server) -> None:  # noqa: ANN001
    app = app_with(login_max_failures_per_address=3)
    base = live_server(app)
    app_users(app)
    with client_from(base, OTHER_ADDRESS) as sprayer, client_from(base) as owner:
        for name in ("u1", "u2", "u3"):
            assert _login(sprayer, name, "guess-guess").status_code == 401
        assert _login(sprayer, "u4", "guess-guess").status_code == 429
        assert _login(sprayer, "viewer1", PASSWORDS["viewer"]).status_code == 429
        assert _login(owner, "viewer1", PASSWORDS["viewer"]).status_code == 200


@pytest.fixture(params=["postgresql", "sqlite"])
def any_db_app(request, settings_env, pg_url, tmp_path):  # noqa: ANN001, ANN201
    from api.app import create_app
    from api.cli import ensure_schema

    url = pg_url if request.param == "postgresql" else f"sqlite:///{tmp_path / 'throttle.db'}"
    settings = settings_env(database_url=url, secret_key=SECRET)
    ensure_schema(settings.db_url)
    return create_app(settings)


def test_concurrent_wrong_passwords_check_at_most_the_free_tries(
    any_db_app, live_server, monkeypatch
) -> None:  # noqa: ANN001
    """40 simultaneous guesses for one user from one address: exactly ``login_max_failures`` passwords
    are checked (401), every other try is told to wait (429) — the count is claimed atomically."""
    # a first wait longer than the burst, so no try is (rightly) let through after it
    monkeypatch.setattr("api.auth.LOGIN_BASE_DELAY_S", 300.0)
    app = any_db_app
    base = live_server(app)
    app_users(app)
    with client_from(base, OTHER_ADDRESS) as c, ThreadPoolExecutor(40) as pool:
        codes = list(pool.map(lambda _: _login(c, "reviewer1", "guess-guess").status_code, range(40)))
    assert sorted(set(codes)) == [401, 429], codes
    assert codes.count(401) == app.state.settings.login_max_failures


def test_forwarded_for_counts_only_from_trusted_proxies(app_with, live_server) -> None:  # noqa: ANN001
    from urbaneye.db.models import LoginThrottle

    app = app_with(trusted_proxies="127.0.0.1/32")
    base = live_server(app)
    app_users(app)
    forwarded = {"X-Forwarded-For": "198.51.100.7"}
    with client_from(base) as proxy, client_from(base, OTHER_ADDRESS) as stranger:
        assert _login(proxy, "nobody", "guess-guess", **forwarded).status_code == 401
        assert _login(stranger, "nobody", "guess-guess", **forwarded).status_code == 401
    session = app.state.sessionmaker()
    try:
        keys = set(session.scalars(select(LoginThrottle.key).where(LoginThrottle.key.like("user:nobody|%"))))
    finally:
        session.close()
    # the proxy's forward is believed; the stranger's forged header is not
    assert keys == {"user:nobody|198.51.100.7", f"user:nobody|{OTHER_ADDRESS}"}


# --- headers and the access log ------------------------------------------------------------------


def test_security_headers_on_ui_api_and_evidence(served, make_case, store) -> None:  # noqa: ANN001
    base, users = served
    case = make_case()
    evidence_url = store.presigned_url(case.evidence[0].key, 60)
    with client_from(base) as c:
        ui = c.get("/ui/")
        api = c.get("/api/v1/auth/me", headers=users.headers("viewer"))
        image = c.get(evidence_url)
    assert ui.status_code == 200 and api.status_code == 200 and image.status_code == 200
    assert image.headers["content-type"] == "image/jpeg"
    for r in (ui, api, image):
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["Referrer-Policy"] == "no-referrer"
        assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
    ui_csp = ui.headers["Content-Security-Policy"]
    assert "script-src 'self';" in ui_csp and "unsafe-inline" not in ui_csp
    assert image.headers["Content-Security-Policy"].startswith("default-src 'none'")


def test_evidence_signature_never_reaches_the_access_log(app, live_server, make_case, store) -> None:  # noqa: ANN001
    base = live_server(app, log_level="info")
    case = make_case()
    evidence_url = store.presigned_url(case.evidence[0].key, 60)
    signature = evidence_url.split("signature=", 1)[1]
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    access = logging.getLogger("uvicorn.access")
    access.addHandler(handler)
    try:
        with client_from(base) as c:
            assert c.get(evidence_url).status_code == 200
            assert c.get("/healthz").status_code in (200, 503)
    finally:
        access.removeHandler(handler)
    log = buf.getvalue()
    assert "/api/evidence/object/" in log and "signature=***" in log
    assert signature not in log
