"""Property-based fuzzing of the whole OpenAPI schema (schemathesis), with every role's token (the admin
with the most examples): no 5xx, and every response matches its documented status codes, content types
and schemas.

Operations are driven one by one with ``APIOperation.as_strategy`` (schemathesis' pytest fixture loader
does not run under this pytest), positive and negative data, a few examples each, derandomised so a
failure reproduces.
"""

from __future__ import annotations

import datetime as dt

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = {GenerationMode.POSITIVE: 5, GenerationMode.NEGATIVE: 2}
#: Other roles mostly meet 403s; fewer examples keep the run short.
ROLE_EXAMPLES = {GenerationMode.POSITIVE: 2, GenerationMode.NEGATIVE: 1}
LOGOUT = "/api/v1/auth/logout"


def _seed(session) -> None:  # noqa: ANN001
    from urbaneye.db.models import Camera, Case

    if session.get(Camera, "cam-1") is not None:
        return  # seeded by an earlier role's run
    session.add(
        Camera(id="cam-1", name="人民路", config={"id": "cam-1", "source": {"url": "rtsp://u:p@h/1"}})
    )
    session.add(
        Case(
            id="c" * 32,
            violation_id="v1",
            camera_id="cam-1",
            kind="street_vending",
            gbt_code="0501",
            gbt_name="无照经营游商",
            started_at=dt.datetime(2024, 5, 1, tzinfo=dt.UTC),
        )
    )
    session.commit()


def _call(case, auth: dict, label: str, failures: list[str]) -> None:  # noqa: ANN001
    try:
        case.call_and_validate(headers={**(case.headers or {}), **auth}, checks=CHECKS)
    except (Exception, BaseExceptionGroup) as exc:  # report every operation's failures together
        failures.append(f"{label}: {exc}"[:1500])


def _throwaway_token(app, session, role: str) -> dict[str, str]:  # noqa: ANN001
    """A token of a user made for this run: logging out revokes all of a user's tokens, which would
    leave the rest of the run unauthenticated."""
    from api.auth import create_user, issue_token

    user = create_user(session, f"fuzz-{role}-logout", "fuzz-logout-pw", role)
    session.commit()
    kind = "service" if role == "service" else "access"
    return {"Authorization": f"Bearer {issue_token(user, app.state.settings, kind=kind).token}"}


@pytest.mark.parametrize("role", ["admin", "reviewer", "viewer", "service"])
def test_api_conforms_to_its_schema(module_app, role: str) -> None:  # noqa: ANN001
    app, _, users, session = module_app
    _seed(session)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    auth = users.headers(role)
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 25
    assert any(op.path == LOGOUT for op in operations)
    examples = EXAMPLES if role == "admin" else ROLE_EXAMPLES
    for operation in operations:
        op_auth = _throwaway_token(app, session, role) if operation.path == LOGOUT else auth
        for mode, n in examples.items():
            label = f"{role} {operation.method.upper()} {operation.path} ({mode.value})"

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=n,
                deadline=None,
                derandomize=True,
                database=None,
                phases=[Phase.explicit, Phase.generate],  # no shrinking: keeps the run bounded
                suppress_health_check=list(HealthCheck),
            )
            def run(case) -> None:  # noqa: ANN001
                _call(case, op_auth, label, failures)  # noqa: B023 - run() is called right below, in this iteration

            try:
                run()
            except Unsatisfiable:
                # negative mode has nothing to break in an operation without parameters or body
                assert mode == GenerationMode.NEGATIVE, f"{label}: no positive data"
    assert not failures, "\n\n".join(failures)
