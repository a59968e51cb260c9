"""Object-store drills: S3 (moto) behind a TCP proxy that is frozen (SIGSTOP: a hung store that accepts
connections and never answers) or killed and brought back empty, with a real Celery worker, PostgreSQL,
a Redis of the test's own and the hotline receiver.

The hang lasts ``URBANEYE_DRILL_S3_HANG_S`` seconds (default 8, longer than the 5-s task time limit the
drill sets, so a task that waited for S3 would be cut off). The measured numbers are printed
(``pytest -s``) and kept as ``record_property`` entries in a junit report.
"""

from __future__ import annotations

import os
import statistics
import time
from collections import Counter

import httpx
from sqlalchemy import select

from tests.urbaneye.test_drills import IMMEDIATE, _all_delivered, _assert_intact, _state, _submit
from tests.waiting import wait_for
from urbaneye.db.models import Case, Evidence
from urbaneye.db.session import session_scope
from urbaneye.storage import get_store, read_evidence

HANG_S = float(os.environ.get("URBANEYE_DRILL_S3_HANG_S", "8"))
#: Issue 15: the case row exists within 2 s of the event whether S3 refuses, hangs or is slow.
CASE_ROW_TARGET_S = 2.0


def _case_exists(db_url: str, vid: str) -> bool:
    with session_scope(db_url) as s:
        return s.scalar(select(Case.id).where(Case.violation_id == vid)) is not None


def _worker_survived(worker) -> None:  # noqa: ANN001
    log = worker.log_path.read_text(errors="replace")
    assert worker.proc is not None and worker.proc.poll() is None, "the worker process died"
    for sign in ("TimeLimitExceeded", "Hard time limit", "exited with 'signal", "WorkerLostError"):
        assert sign not in log, f"worker log shows {sign!r}:\n{log[-3000:]}"


def test_hung_s3_cases_are_created_in_time_and_evidence_follows_the_thaw(
    make_stack, private_redis_url, s3_proxy, worker_factory, stream_relay, record_property
):
    stack = make_stack(
        private_redis_url, push_policy=IMMEDIATE, s3_endpoint=s3_proxy.endpoint, task_time_limit_s=5
    )
    worker = worker_factory(stack.env)
    worker.start()
    handoff = stream_relay()
    vids = _submit(handoff, range(0, 1))
    wait_for(lambda: _all_delivered(stack, vids), what="first case delivered (S3 healthy)")

    s3_proxy.freeze()
    frozen_at = time.monotonic()
    latencies_s: list[float] = []
    i = 1
    while time.monotonic() - frozen_at < HANG_S:  # violations keep arriving while S3 hangs
        t0 = time.monotonic()
        vid = _submit(handoff, range(i, i + 1))[0]
        wait_for(lambda v=vid: _case_exists(stack.db_url, v), interval_s=0.01, what=f"case of {vid}")
        latencies_s.append(time.monotonic() - t0)
        vids.append(vid)
        i += 1
        time.sleep(0.5)  # pacing of arrivals, not a wait for a state
    # still frozen: every case exists, its evidence waits in the spool, nothing was pushed without it
    st = _state(stack.db_url)
    assert st["violations"] == sorted(vids)
    assert len(st["evidence_pending"]) == 6 * (len(vids) - 1)
    assert len(stack.hotline.accepted) == 1

    s3_proxy.thaw()
    thawed_at = time.monotonic()
    wait_for(lambda: _all_delivered(stack, vids), timeout_s=120, what="evidence uploaded after the thaw")
    upload_after_thaw_s = time.monotonic() - thawed_at

    _assert_intact(stack, vids, handoff)
    assert max(Counter(stack.hotline.keys()).values()) == 1
    _worker_survived(worker)
    numbers = {
        "cases_while_frozen": len(latencies_s),
        "case_row_p50_s": round(statistics.median(latencies_s), 3),
        "case_row_max_s": round(max(latencies_s), 3),
        "upload_after_thaw_s": round(upload_after_thaw_s, 2),
    }
    print(f"\nS3 hang drill ({HANG_S:g} s frozen): {numbers}")
    for k, v in numbers.items():
        record_property(k, v)
    assert max(latencies_s) <= CASE_ROW_TARGET_S, f"event -> case row took longer than 2 s: {latencies_s}"


def test_s3_back_empty_recreates_the_bucket_without_a_restart(
    make_stack, private_redis_url, s3_proxy, worker_factory, stream_relay
):
    stack = make_stack(private_redis_url, push_policy=IMMEDIATE, s3_endpoint=s3_proxy.endpoint)
    worker = worker_factory(stack.env)
    worker.start()
    pid = worker.proc.pid
    handoff = stream_relay()
    first = _submit(handoff, range(0, 1))
    wait_for(lambda: _all_delivered(stack, first), what="first case delivered (bucket ready)")

    s3_proxy.kill()  # MinIO goes away ...
    httpx.post(f"http://{stack.s3['endpoint']}/moto-api/reset", timeout=10).raise_for_status()
    later = _submit(handoff, range(1, 3))
    wait_for(lambda: len(_state(stack.db_url)["violations"]) == 3, what="cases created while S3 is away")
    s3_proxy.start()  # ... and comes back on the same address without its bucket (a fresh volume)

    vids = first + later
    wait_for(lambda: _all_delivered(stack, vids), timeout_s=90, what="uploads after the bucket came back")
    assert worker.proc is not None and worker.proc.pid == pid and worker.proc.poll() is None
    assert b"re-creating it" in worker.log_path.read_bytes()

    store = get_store()
    cfg = store.client.get_object_lock_config(stack.settings().s3_bucket)
    assert cfg.mode == "GOVERNANCE"  # re-created with its object-lock settings
    with session_scope(stack.db_url) as s:
        rows = s.scalars(
            select(Evidence).join(Case).where(Case.violation_id.in_(later)).order_by(Evidence.id)
        ).all()
        assert len(rows) == 12
        for e in rows:
            read_evidence(store, e.key, e.sha256)
            assert store.stat(e.key).metadata["x-amz-object-lock-mode"] == "GOVERNANCE"
    assert max(Counter(stack.hotline.keys()).values()) == 1
