"""Production stack files (Docker cannot run here): parse and cross-check them against the code."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.urbaneye.conftest import REPO
from urbaneye.settings import SETTINGS_DOC_BEGIN, SETTINGS_DOC_END, Settings, settings_markdown


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))


def _env(service: dict) -> dict[str, str]:
    return {k: str(v) for k, v in (service.get("environment") or {}).items()}


def test_services_and_commands(compose):
    svc = compose["services"]
    assert {"postgres", "redis", "minio", "migrate", "api", "streams", "celery", "relay", "trainer"} <= set(
        svc
    )
    assert svc["api"]["command"] == ["serve"]
    assert svc["streams"]["command"][0] == "stream-worker"
    assert svc["celery"]["command"][:3] == ["worker", "--queues", "cases,hotline"]
    assert svc["trainer"]["command"][:3] == ["worker", "--queues", "training"]
    assert svc["migrate"]["command"] == ["db", "upgrade"]
    for name in ("api", "streams", "celery", "relay", "trainer"):
        assert svc[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_spool_volume_is_shared_by_writers_and_readers(compose):
    svc = compose["services"]
    for name in ("streams", "celery", "relay", "api"):
        assert "spool:/data/spool" in svc[name]["volumes"], f"{name} must mount the shared spool"


def test_environment_names_real_settings_and_validates_in_production(compose):
    fields = {f"URBANEYE_{n.upper()}" for n in Settings.model_fields}
    for name, service in compose["services"].items():
        env = _env(service)
        unknown = sorted(k for k in env if k.startswith("URBANEYE_") and k not in fields)
        assert not unknown, f"service {name} sets unknown settings {unknown}"
    env = _env(compose["services"]["celery"])
    assert env["URBANEYE_S3_OBJECT_LOCK"] == "true" and env["URBANEYE_ENVIRONMENT"] == "production"
    # secrets are required (${VAR:?...}), never defaulted
    for key in ("URBANEYE_SECRET_KEY", "URBANEYE_HOTLINE_SECRET", "URBANEYE_AUDIT_KEY"):
        assert re.fullmatch(r"\$\{\w+:\?[^}]+\}", env[key]), key
    resolved = {
        # ${X:-default} -> default; ${X:?message} -> a value the operator must supply
        k.removeprefix("URBANEYE_").lower(): re.sub(
            r"\$\{(\w+)(:[-?])([^}]*)\}", lambda m: m.group(3) if m.group(2) == ":-" else "supplied", v
        )
        for k, v in env.items()
    }
    resolved.update(
        secret_key="real-secret-" + "k" * 40,
        hotline_secret="real-hotline-secret-" + "h" * 40,
        audit_key="real-audit-key-" + "a" * 40,
    )
    s = Settings(**resolved)
    assert s.broker_url == "redis://redis:6379/0" and s.evidence_backend == "s3"


def test_dockerfile_runtime_image():
    text = (REPO / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\s*$", text, re.M)
    assert "ffmpeg" in text and "fonts-noto-cjk" in text
    assert 'ENTRYPOINT ["tini", "--", "urbaneye"]' in text
    assert "torch" not in text.split("FROM python:3.11-slim\n")[-1]  # runtime stage installs no torch
    assert "USER urbaneye" in text
    ignore = (REPO / ".dockerignore").read_text().split()
    assert {".venv", "var", ".env", ".git"} <= set(ignore)


def test_settings_doc_is_generated_from_the_fields():
    doc = (REPO / "docs" / "settings.md").read_text(encoding="utf-8")
    table = doc.split(SETTINGS_DOC_BEGIN, 1)[1].split(SETTINGS_DOC_END, 1)[0].strip()
    assert table == settings_markdown().strip(), "run: python -m urbaneye.settings docs/settings.md"
