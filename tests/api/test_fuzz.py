"""Property-based fuzzing of the whole OpenAPI schema (schemathesis), authenticated as an admin:
no 5xx, and every response matches its documented status codes, content types and schemas.

Operations are driven one by one with ``APIOperation.as_strategy`` (schemathesis' pytest fixture loader
does not run under this pytest), positive and negative data, a few examples each, derandomised so a
failure reproduces.
"""

from __future__ import annotations

import datetime as dt

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


def _seed(session) -> None:  # noqa: ANN001
    from urbaneye.db.models import Camera, Case

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


def test_api_conforms_to_its_schema(module_app) -> None:  # noqa: ANN001
    app, _, users, session = module_app
    _seed(session)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    auth = users.headers("admin")
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 25
    for operation in operations:
        for mode, n in EXAMPLES.items():
            label = f"{operation.method.upper()} {operation.path} ({mode.value})"

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
                _call(case, auth, label, failures)  # noqa: B023 - run() is called right below, in this iteration

            try:
                run()
            except Unsatisfiable:
                # negative mode has nothing to break in an operation without parameters or body
                assert mode == GenerationMode.NEGATIVE, f"{label}: no positive data"
    assert not failures, "\n\n".join(failures)
