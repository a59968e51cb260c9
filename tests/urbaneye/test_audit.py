"""Audit chain: serialised appends under concurrency, tamper detection through `urbaneye audit verify`."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

from sqlalchemy import select, text

from tests.urbaneye.conftest import REPO, make_context, make_event, make_frames
from urbaneye.audit import GENESIS_HASH, append_audit
from urbaneye.audit_verify import verify_chain
from urbaneye.cases import service
from urbaneye.cases.handoff import Handoff
from urbaneye.db.models import AuditLog, Evidence
from urbaneye.db.session import session_scope
from urbaneye.storage import get_store


def _append_concurrently(url: str, threads: int = 4, each: int = 15) -> None:
    def work(t: int) -> None:
        for i in range(each):
            with session_scope(url) as s:
                append_audit(
                    s, f"user:{t}", "transition", "case", f"c{t}-{i}", "a", "b", {"i": i, "说明": "测试"}
                )

    pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()


def _check_linear(url: str, expected: int) -> None:
    with session_scope(url) as s:
        rows, problems = verify_chain(s)
        assert (rows, problems) == (expected, [])
        prevs = s.scalars(select(AuditLog.prev_hash).order_by(AuditLog.id)).all()
        assert prevs[0] == GENESIS_HASH and len(set(prevs)) == expected  # no fork: each head used once


def test_concurrent_appends_form_one_chain_on_postgres(pg_url):
    from urbaneye.db.migrate import upgrade

    upgrade(pg_url)
    _append_concurrently(pg_url)
    _check_linear(pg_url, 60)


def test_concurrent_appends_form_one_chain_on_sqlite(tmp_path):
    from urbaneye.db.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'a.db'}"
    upgrade(url)
    _append_concurrently(url, threads=3, each=10)
    _check_linear(url, 30)


def _verify_cli(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "urbaneye.cli", "audit", "verify"],
        cwd="/", env={**os.environ, **env, "PYTHONPATH": str(REPO)},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_audit_verify_cli_detects_tampered_row_and_evidence(make_stack, private_redis_url):
    stack = make_stack(private_redis_url)
    ev = make_event("cam-1:z1:9")
    Handoff().spool.write("t-9", ev, make_context(), make_frames(ev))
    assert service.process_spool_item("t-9") == "done"
    case_id = service.case_id_for(ev.violation_id)
    with session_scope(stack.db_url) as s:
        service.review_case(s, case_id, "u1", "confirm")

    ok = _verify_cli(stack.env)
    assert ok.returncode == 0, ok.stderr
    # the explicit rows (create, transitions) and one row_* entry per covered row change (issue 15)
    assert "14 rows checked, 0 problems" in ok.stdout and "6 objects read back, 0 problems" in ok.stdout

    with session_scope(stack.db_url) as s:  # someone rewrites history: who confirmed the case
        target = s.scalar(select(AuditLog.id).where(AuditLog.to_status == "confirmed"))
        s.execute(text("UPDATE audit_log SET actor = 'user:nobody' WHERE id = :i"), {"i": target})
    bad = _verify_cli(stack.env)
    assert bad.returncode == 1
    assert f"audit_log id={target}: content does not match its hash" in bad.stderr

    with session_scope(stack.db_url) as s:  # restore the row, then delete one: the link breaks
        s.execute(text("UPDATE audit_log SET actor = 'user:u1' WHERE id = :i"), {"i": target})
        s.execute(text("DELETE FROM audit_log WHERE id = :i"), {"i": target})
    bad = _verify_cli(stack.env)
    assert bad.returncode == 1 and f"audit_log id={target + 1}: prev_hash does not match" in bad.stderr

    with session_scope(stack.db_url) as s:
        evidence = s.scalars(select(Evidence).order_by(Evidence.id)).first()
    get_store().put(evidence.key, b"\xff\xd8 a different picture")  # a new object version replaces it
    bad = _verify_cli({**stack.env})
    assert f"evidence id={evidence.id} case={case_id} key={evidence.key}: sha256" in bad.stderr
