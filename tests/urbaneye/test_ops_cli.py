"""`urbaneye worker` / `urbaneye relay` argument handling (the worker itself runs in test_pipeline)."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.urbaneye.conftest import REPO, make_context, make_event, make_frames


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "urbaneye.cli", *args],
        env={**os.environ, **(env or {}), "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_worker_refuses_unknown_queue_and_embedded_broker():
    bad = _cli("worker", "--queues", "cases,video", env={"URBANEYE_BROKER_URL": "redis://127.0.0.1:1/0"})
    assert bad.returncode == 2 and "unknown queue(s) ['video']" in bad.stderr
    embedded = _cli("worker", env={"URBANEYE_BROKER_URL": "memory://"})
    assert embedded.returncode == 2 and "memory://" in embedded.stderr


def test_relay_once_turns_a_stranded_spool_item_into_a_case(tmp_path):
    """Embedded mode: an item spooled while nothing processed it is picked up by `urbaneye relay --once`."""
    from urbaneye.cases.spool import Spool
    from urbaneye.db.migrate import upgrade

    env = {
        "URBANEYE_DATA_DIR": str(tmp_path / "var"),
        "URBANEYE_DATABASE_URL": f"sqlite:///{tmp_path / 'ue.db'}",
        "URBANEYE_BROKER_URL": "memory://",
        "URBANEYE_SPOOL_RESEND_AFTER_S": "0.5",
    }
    upgrade(env["URBANEYE_DATABASE_URL"])
    ev = make_event("cam-1:z1:77")
    spool = Spool(tmp_path / "var" / "spool")
    spool.write(
        "stranded",
        ev,
        make_context(),
        make_frames(ev),
    )
    out = _cli("relay", "--once", env=env)
    assert out.returncode == 0, out.stderr
    assert spool.is_done("stranded") and spool.pending_ids() == []
    from sqlalchemy import create_engine, text

    engine = create_engine(env["URBANEYE_DATABASE_URL"])
    with engine.connect() as conn:
        assert conn.execute(text("SELECT violation_id, status FROM cases")).all() == [
            ("cam-1:z1:77", "pending_review")
        ]
    engine.dispose()
