"""`urbaneye audit verify` names each way of cutting or swapping the audit chain (issue 15 item 4).

Real PostgreSQL and the embedded SQLite default; the tampering is what someone with database (and
disk) access but without the audit key can do: raw SQL, files written directly.

1. the most recent rows deleted (even the one a `urbaneye users create` just wrote),
2. a row rewritten and every later hash recomputed,
3. ``UPDATE cases SET status='closed'`` behind the app's back,
4. an evidence object replaced together with its ``evidence.sha256``,
5. a re-check after-photo altered on disk, or replaced together with its row's SHA-256.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, text

from tests.urbaneye.conftest import REPO, make_context, make_event, make_frames, tiny_jpeg
from urbaneye.audit import GENESIS_HASH, head_file_for, row_hash
from urbaneye.audit_checkpoints import write_checkpoint
from urbaneye.cases import service
from urbaneye.cases.handoff import Handoff
from urbaneye.db.models import AuditLog, Case, Evidence, utcnow
from urbaneye.db.rechecks import RecheckResult, RecheckTrigger
from urbaneye.db.session import session_scope
from urbaneye.rechecks import (
    AfterPhoto,
    RecheckOutcome,
    after_photo_key,
    claim_rechecks,
    finish_recheck,
    request_recheck,
)
from urbaneye.storage import get_store
from vision.config import RecheckConfig


@pytest.fixture(params=["sqlite", "postgres"])
def stack(
    request: pytest.FixtureRequest, settings_env: Callable[..., object], tmp_path: Path
) -> Iterator[dict]:
    """Settings for one database (evidence in the local write-once store); returns the CLI's environment."""
    from urbaneye.celery_app import reconfigure
    from urbaneye.db.migrate import upgrade

    url = (
        f"sqlite:///{tmp_path / 'ue.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    )
    env = {
        "URBANEYE_DATA_DIR": str(tmp_path / "var"),
        "URBANEYE_DATABASE_URL": url,
        "URBANEYE_BROKER_URL": "memory://",
        "URBANEYE_EVIDENCE_BACKEND": "fs",
        "URBANEYE_S3_OBJECT_LOCK": "true",
        "URBANEYE_AUDIT_KEY": "test-audit-key-" + "k" * 32,
    }
    settings_env(**{k.removeprefix("URBANEYE_").lower(): v for k, v in env.items()})
    upgrade(url)
    reconfigure()
    yield {"env": env, "url": url}
    reconfigure()


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "urbaneye.cli", *args],
        cwd="/", env={**os.environ, **env, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def reviewed_case(url: str, n: int = 1) -> str:
    """A case made from the spool (evidence uploaded), then confirmed by a reviewer: returns its id."""
    ev = make_event(f"cam-1:z1:{n}")
    Handoff().spool.write(f"t-{n}", ev, make_context(), make_frames(ev))
    assert service.process_spool_item(f"t-{n}") == "done"
    case_id = service.case_id_for(ev.violation_id)
    with session_scope(url) as s:
        service.review_case(s, case_id, "u1", "confirm")
    return case_id


def assert_clean(env: dict[str, str]) -> None:
    ok = cli(env, "audit", "verify")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ", 0 problems" in ok.stdout


def sql(url: str, statement: str, **params: object) -> None:
    with session_scope(url) as s:
        s.execute(text(statement), params)


def test_deleting_the_most_recent_row_is_named(stack: dict) -> None:
    env, url = stack["env"], stack["url"]
    reviewed_case(url)
    with session_scope(url) as s:
        before = s.scalar(select(AuditLog.id).order_by(AuditLog.id.desc()).limit(1))
    # an admin account created on the command line: one committing transaction, anchored at once
    made = cli(env, "users", "create", "--username", "mallory", "--role", "admin", "--password", "p" * 16)
    assert made.returncode == 0, made.stderr
    assert_clean(env)
    with session_scope(url) as s:
        last = s.scalar(select(AuditLog.id).order_by(AuditLog.id.desc()).limit(1))
        assert {"users", "user"} >= set(s.scalars(select(AuditLog.entity).where(AuditLog.id > before)))
    # the trace of the new account goes, and the account with it: what is left still links up
    sql(url, "DELETE FROM audit_log WHERE id > :i", i=before)
    sql(url, "DELETE FROM users WHERE username = 'mallory'")
    bad = cli(env, "audit", "verify")
    assert bad.returncode == 1
    assert (
        f"TRUNCATED audit_log: the table ends at id={before} but the head file anchored id={last}"
        in bad.stderr
    )
    assert "the most recent rows were deleted" in bad.stderr


def test_a_rewritten_row_with_every_later_hash_recomputed_is_named(stack: dict) -> None:
    env, url = stack["env"], stack["url"]
    reviewed_case(url)
    assert_clean(env)
    with session_scope(url) as s:  # who confirmed the case becomes someone else, the chain recomputed
        rows = s.scalars(select(AuditLog).order_by(AuditLog.id)).all()
        target = next(r.id for r in rows if r.to_status == "confirmed" and r.action == "transition")
        prev = GENESIS_HASH
        for row in rows:
            if row.id == target:
                row.actor = "user:nobody"
            row.prev_hash = prev
            row.hash = prev = row_hash(prev, row)
    bad = cli(env, "audit", "verify")
    assert bad.returncode == 1
    assert f"audit_log id={target}: REWRITTEN: its MAC does not match" in bad.stderr
    assert "rewritten and the hashes after it recomputed" in bad.stderr
    assert "content does not match its hash" not in bad.stderr  # the hashes do add up
    # the anchor of the last commit disagrees as well
    assert "its hash differs from the one anchored in the head file" in bad.stderr


def test_a_case_closed_behind_the_apps_back_is_named(stack: dict) -> None:
    env, url = stack["env"], stack["url"]
    case_id = reviewed_case(url)
    assert_clean(env)
    sql(url, "UPDATE cases SET status = 'closed' WHERE id = :i", i=case_id)
    bad = cli(env, "audit", "verify")
    assert bad.returncode == 1
    assert f"CHANGED_OUTSIDE_APP cases id={case_id}: status is 'closed' (audit log: 'queued')" in bad.stderr
    assert "changed outside the app" in bad.stderr


def test_an_evidence_object_swapped_with_its_sha256_is_named(stack: dict) -> None:
    env, url = stack["env"], stack["url"]
    case_id = reviewed_case(url)
    assert_clean(env)
    with session_scope(url) as s:
        evidence = s.scalars(
            select(Evidence).where(Evidence.case_id == case_id).order_by(Evidence.id)
        ).first()
    forged = b"\xff\xd8 another picture"
    path = Path(env["URBANEYE_DATA_DIR"]) / "evidence" / evidence.key
    path.write_bytes(forged)  # past the write-once store: straight onto its disk
    new_sha = hashlib.sha256(forged).hexdigest()
    sql(
        url,
        "UPDATE evidence SET sha256 = :h, size_bytes = :n WHERE id = :i",
        h=new_sha,
        n=len(forged),
        i=evidence.id,
    )
    bad = cli(env, "audit", "verify")
    assert bad.returncode == 1
    assert (
        f"EVIDENCE_SWAPPED evidence id={evidence.id} key={evidence.key}: sha256 is {new_sha} but audit_log id="
        in bad.stderr
    )
    assert f"recorded {evidence.sha256}" in bad.stderr
    # the object and the row agree with each other: only the chain tells
    assert "(object altered)" not in bad.stderr


def rechecked_case(url: str) -> tuple[str, AfterPhoto]:
    """A reviewed case re-checked by the camera (a reviewer's request), its after-photo stored."""
    case_id = reviewed_case(url)
    with session_scope(url) as s:
        request_recheck(s, s.get(Case, case_id), RecheckTrigger.MANUAL, "user:u1")
    with session_scope(url) as s:
        (target,) = claim_rechecks(s, ["cam-1"], "worker-a", lambda _cid: 5.0)
    store, day = get_store(), utcnow().date()
    keys = [after_photo_key("cam-1", case_id, target.recheck_id, day, v) for v in ("clean", "annotated")]
    shas = [store.put(key, tiny_jpeg(50 + i)) for i, key in enumerate(keys)]
    photo = AfterPhoto(keys[0], shas[0], keys[1], shas[1])
    outcome = RecheckOutcome(
        result=RecheckResult.STILL_PRESENT, reason="", window_s=5.0, frames=25, usable_frames=25,
        present_frames=25, objects_after=1, present_bbox_xyxy=(10.0, 20.0, 110.0, 220.0),
        frame_wh=(1280, 720), frame_at=utcnow(),
    )  # fmt: skip
    with session_scope(url) as s:
        finish_recheck(s, target.recheck_id, outcome, photo, RecheckConfig(), "system:recheck")
    return target.recheck_id, photo


def test_a_recheck_after_photo_altered_or_swapped_is_named(stack: dict) -> None:
    env, url = stack["env"], stack["url"]
    recheck_id, photo = rechecked_case(url)
    ok = cli(env, "audit", "verify")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    with session_scope(url) as s:
        frames = len(s.scalars(select(Evidence.id)).all())
    # the case's evidence objects and the two after-photos (clean, annotated) are read back
    assert f"evidence: {frames + 2} objects read back, 0 problems" in ok.stdout

    evidence_dir = Path(env["URBANEYE_DATA_DIR"]) / "evidence"
    (evidence_dir / photo.clean_key).write_bytes(tiny_jpeg(99))  # past the write-once store, onto its disk
    bad = cli(env, "audit", "verify")
    assert bad.returncode == 1
    assert f"recheck id={recheck_id}" in bad.stderr and f"key={photo.clean_key}" in bad.stderr
    assert f"!= recorded {photo.clean_sha256} (object altered)" in bad.stderr

    forged = tiny_jpeg(98)  # the annotated photo replaced, and its row's SHA-256 with it
    (evidence_dir / photo.annotated_key).write_bytes(forged)
    new_sha = hashlib.sha256(forged).hexdigest()
    sql(url, "UPDATE case_rechecks SET annotated_sha256 = :h WHERE id = :i", h=new_sha, i=recheck_id)
    bad = cli(env, "audit", "verify")
    assert bad.returncode == 1
    assert (
        f"EVIDENCE_SWAPPED: annotated after-photo sha256 is {new_sha} but audit_log id=" in bad.stderr
        and f"recorded {photo.annotated_sha256} under key {photo.annotated_key}" in bad.stderr
    )
    assert f"key={photo.annotated_key}: sha256" not in bad.stderr  # object and row agree: only the chain tells


def test_the_newest_checkpoint_catches_a_cut_when_the_head_file_is_gone_too(stack: dict) -> None:
    env, url = stack["env"], stack["url"]
    reviewed_case(url, 1)
    with session_scope(url) as s:
        cp = write_checkpoint(s, get_store())
    assert cp is not None and cp.seq == 1
    with session_scope(url) as s:
        assert write_checkpoint(s, get_store()) is None  # the head has not moved
    assert_clean(env)
    # someone with the database and this machine's disk cuts the last case's history and the head file
    sql(url, "DELETE FROM audit_log WHERE id >= :i", i=cp.head_id - 1)
    sql(url, "DELETE FROM audit_checkpoints")
    head_file_for(url).unlink()
    bad = cli(env, "audit", "verify")
    assert bad.returncode == 1
    assert f"TRUNCATED audit_log id={cp.head_id}: the head signed in checkpoint 1" in bad.stderr
    assert "rows were deleted" in bad.stderr


def test_checkpoints_in_s3_under_object_lock_anchor_the_head(make_stack: Callable[..., object]) -> None:
    """The production store: MinIO's API (moto) with object lock; the relay's checkpoint round."""
    from urbaneye.audit_checkpoints import (
        Checkpoint,
        CheckpointThread,
        checkpoint_key,
        latest_stored_checkpoint,
    )
    from urbaneye.settings import get_settings

    stack = make_stack("memory://")
    reviewed_case(stack.db_url, 1)
    store = get_store()
    rounds = CheckpointThread(stack.db_url, store, get_settings().audit_checkpoint_interval_s)
    first = rounds.once()
    reviewed_case(stack.db_url, 2)
    second = rounds.once()
    assert (first.seq, second.seq) == (1, 2) and second.head_id > first.head_id
    assert latest_stored_checkpoint(store) == 2
    assert store.object_lock  # written like evidence: with a retention (urbaneye.storage)
    assert Checkpoint.from_json(store.get(checkpoint_key(2))) == second
    assert_clean(stack.env)

    sql(stack.db_url, "DELETE FROM audit_log WHERE id > :i", i=first.head_id)
    sql(stack.db_url, "DELETE FROM audit_checkpoints WHERE seq = 2")
    head_file_for(stack.db_url).unlink()
    bad = cli(stack.env, "audit", "verify", "--skip-evidence")
    assert bad.returncode == 1
    assert f"TRUNCATED audit_log id={second.head_id}: the head signed in checkpoint 2" in bad.stderr


def test_production_refuses_the_default_audit_key() -> None:
    from urbaneye.settings import Settings

    with pytest.raises(ValueError, match="URBANEYE_AUDIT_KEY"):
        Settings(
            environment="production",
            secret_key="s" * 48,
            hotline_secret="h" * 48,
            s3_access_key="urbaneye",
            s3_secret_key="x" * 40,
        )
