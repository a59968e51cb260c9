"""The pieces behind the S3 drills: the circuit breaker, a frozen store behind a real proxy, the soft
time limit, and the hand-off's claimed first send (no double send by the relay)."""

from __future__ import annotations

import httpx
import pytest
from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy import select

from tests.conftest import free_port
from tests.urbaneye.conftest import make_context, make_event, make_frames, tiny_jpeg
from urbaneye.cases import service
from urbaneye.cases.handoff import Handoff
from urbaneye.cases.spool import Spool, make_item_id
from urbaneye.db.models import Evidence
from urbaneye.db.session import session_scope
from urbaneye.storage import (
    BreakerState,
    CircuitBreaker,
    CircuitOpen,
    EvidenceStoreUnavailable,
    MinioEvidenceStore,
)


class Clock:
    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


def test_breaker_fails_fast_then_lets_one_probe_through_per_cool_down():
    clock = Clock()
    b = CircuitBreaker("S3 endpoint test", open_s=2.0, max_open_s=5.0, clock=clock)
    b.before_call()
    b.failure("read timed out")
    assert b.state == BreakerState.OPEN and b.retry_in_s() == 2.0
    with pytest.raises(CircuitOpen, match="read timed out"):
        b.before_call()
    clock.now_s = 2.0
    b.before_call()  # the probe
    assert b.state == BreakerState.HALF_OPEN
    with pytest.raises(CircuitOpen):
        b.before_call()  # only one probe at a time
    b.failure("read timed out")
    assert b.retry_in_s() == 4.0  # a failed probe doubles the cool-down ...
    clock.now_s = 6.0
    b.before_call()
    b.failure("still down")
    assert b.retry_in_s() == 5.0  # ... up to max_open_s
    clock.now_s = 11.0
    b.before_call()
    b.success()
    assert b.state == BreakerState.CLOSED and b.retry_in_s() == 0.0
    b.before_call()


@pytest.mark.parametrize("fault", ["freeze", "kill"])
def test_after_one_failed_upload_the_store_is_not_tried_again_until_the_probe(s3_server, s3_proxy, fault):
    httpx.post(f"http://{s3_server['endpoint']}/moto-api/reset", timeout=10).raise_for_status()
    store = MinioEvidenceStore(
        s3_proxy.endpoint, s3_server["access_key"], s3_server["secret_key"], "ue-faults", timeout_s=1
    )
    store.put("cam-1/a.jpg", tiny_jpeg(1))
    getattr(s3_proxy, fault)()
    with pytest.raises(EvidenceStoreUnavailable, match="unreachable during put"):
        store.put("cam-1/b.jpg", tiny_jpeg(2))  # hangs one time-out (freeze) or is refused (kill)
    with pytest.raises(CircuitOpen, match="not tried"):
        store.put("cam-1/c.jpg", tiny_jpeg(3))  # deferred at once, no network
    assert store.available_in_s() > 0


class SoftLimitStore:
    """A store whose upload is interrupted by Celery's soft time limit."""

    def put(self, key, data, content_type="image/jpeg", metadata=None):  # noqa: ANN001, ANN201
        raise SoftTimeLimitExceeded()

    def available_in_s(self) -> float:
        return 0.0


def test_a_soft_time_limit_during_an_upload_is_not_swallowed(embedded):
    ev = make_event("cam-1:z1:soft")
    item_id = make_item_id(ev.violation_id, ev.event, ev.ts_s)
    spool = Spool(embedded.spool_dir)
    spool.write(
        item_id,
        ev,
        make_context(),
        make_frames(ev),
    )
    with session_scope(embedded.db_url) as s:
        service.record_case_from_spool(s, item_id, spool=spool)
    with pytest.raises(SoftTimeLimitExceeded):
        service.upload_spooled_evidence(item_id, spool=spool, store=SoftLimitStore())
    with session_scope(embedded.db_url) as s:  # the case stays; its evidence waits in the spool
        assert s.scalars(select(Evidence.uploaded)).all() == [False] * 6
    assert spool.pending_ids() == [item_id]


def test_a_relay_round_between_spooling_and_sending_does_not_send_again(tmp_path):
    spool = Spool(tmp_path)
    spool.write("fresh", make_event(), make_context(), [], claim_send=True)
    assert spool.due_for_send(30) == []  # the submitter sends it; the relay leaves it alone
    spool.release_send("fresh")
    assert spool.due_for_send(30) == ["fresh"]


def test_submit_with_the_broker_down_leaves_the_item_to_the_relay(settings_env):
    from urbaneye.celery_app import reconfigure

    settings_env(broker_url=f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    reconfigure()
    try:
        handoff = Handoff()
        ev = make_event("cam-1:z1:down")
        item_id = handoff.submit(ev, make_frames(ev), make_context())
        assert handoff.spool.due_for_send(30) == [item_id]
    finally:
        settings_env(broker_url="memory://")
        reconfigure()
