"""Every route requires a token (401 without) and the right role (403 with another role).

Parametrised over the app's own routes, so a new route without a guard fails here.
"""

from __future__ import annotations

import re

import pytest

from api.app import create_app, iter_api_routes
from urbaneye.settings import Settings

#: Routes that are deliberately open: probes, the login itself, the HMAC-signed hotline callback and the
#: HMAC-signed evidence links. Everything else needs a token.
PUBLIC = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/hotline/callback"),
    ("GET", "/api/evidence/object/{key:path}"),
    ("GET", "/"),
}
ROLES = ("admin", "reviewer", "viewer", "service")


def _allowed_roles(dependant) -> set[str] | None:  # noqa: ANN001
    """Roles from the ``require_role`` guard in a route's dependency tree (None = any logged-in user)."""
    stack = [dependant]
    while stack:
        dep = stack.pop()
        roles = getattr(dep.call, "allowed_roles", None)
        if roles is not None:
            return set(roles)
        stack.extend(dep.dependencies)
    return None


def _routes() -> list[tuple[str, str, set[str] | None]]:
    app = create_app(Settings(environment="test", database_url="sqlite://"))
    out = []
    for route in iter_api_routes(app):
        for method in sorted(route.methods - {"HEAD"}):
            if (method, route.path) not in PUBLIC:
                out.append((method, route.path, _allowed_roles(route.dependant)))
    return out


ROUTES = _routes()


def _url(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x1", path)


def test_routes_are_found() -> None:
    paths = {p for _, p, _ in ROUTES}
    assert {
        "/api/v1/cases",
        "/api/v1/cases/{case_id}/verify",
        "/api/v1/cameras/{camera_id}/zones/{zone_id}",
    } <= paths
    assert len(ROUTES) > 25


@pytest.mark.parametrize(("method", "path", "roles"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
def test_route_requires_token_and_role(module_app, method, path, roles) -> None:  # noqa: ANN001
    _, client, users, _ = module_app
    url = _url(path)
    r = client.request(method, url, json={})
    assert r.status_code == 401, (method, path, r.status_code, r.text)
    r = client.request(method, url, json={}, headers={"Authorization": "Bearer not-a-token"})
    assert r.status_code == 401
    if roles is None:
        return  # any logged-in user (e.g. /auth/me)
    assert "admin" in roles, f"{method} {path}: admins should be allowed everything"
    for role in ROLES:
        r = client.request(method, url, json={}, headers=users.headers(role))
        if role in roles:
            assert r.status_code not in (401, 403), (method, path, role, r.text)
        else:
            assert r.status_code == 403, (method, path, role, r.status_code, r.text)
            assert role in r.json()["detail"]


def test_review_routes_are_reviewer_only() -> None:
    by_route = {(m, p): roles for m, p, roles in ROUTES}
    assert by_route[("POST", "/api/v1/cases/{case_id}/verify")] == {"admin", "reviewer"}
    assert by_route[("PUT", "/api/v1/cameras/{camera_id}/zones/{zone_id}")] == {"admin"}
    assert by_route[("POST", "/api/v1/models/{version}/promote")] == {"admin"}
    assert by_route[("GET", "/api/v1/stats")] == {"admin", "reviewer", "viewer"}
