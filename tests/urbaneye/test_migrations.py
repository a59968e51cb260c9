"""Alembic migrations: from the first table, on PostgreSQL and SQLite, from any working directory."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.urbaneye.conftest import REPO
from urbaneye.db.migrate import current_revision, head_revision, pending_model_changes, upgrade


def test_postgres_upgrade_matches_models(pg_url):
    assert current_revision(pg_url) is None
    assert upgrade(pg_url) == head_revision()
    assert pending_model_changes(pg_url) == []  # a model change without a migration fails here
    assert upgrade(pg_url) == head_revision()  # idempotent


def test_sqlite_upgrade_via_cli_from_another_directory(tmp_path):
    url = f"sqlite:///{tmp_path / 'sub' / 'ue.db'}"
    proc = subprocess.run(
        [sys.executable, "-m", "urbaneye.cli", "db", "upgrade", "--database-url", url],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert f"database at revision {head_revision()}" in proc.stdout
    assert pending_model_changes(url) == []
