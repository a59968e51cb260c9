"""Camera re-check end to end (issue 19): dispatched cases, a real stream worker (``WorkerStack`` with the
bootstrap detector) playing rendered scenario clips, PostgreSQL, moto S3 and the hotline stand-in.

The stall left -> cleared, after-photo stored with its SHA-256 in the audit chain, case closed (视频核查),
the hotline gets the ``recheck`` message once; the stall stayed -> still_present, escalated; the camera is
offline -> inconclusive, nothing closed.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from datasets.recheck_eval import BOOTSTRAP_MODEL, SCENES, case_box, render_scene
from streams.run import WorkerOptions, WorkerStack
from tests.urbaneye.conftest import make_context, make_event, make_frames
from tests.waiting import wait_for
from urbaneye.audit_verify import verify_chain
from urbaneye.cases import service
from urbaneye.cases.handoff import Handoff
from urbaneye.db.models import AuditLog, Case, Outbox
from urbaneye.db.rechecks import CaseRecheck, RecheckState
from urbaneye.db.session import session_scope
from urbaneye.hotline.callbacks import apply_hotline_callback
from urbaneye.hotline.delivery import deliver_outbox
from urbaneye.hotline.signing import sign
from urbaneye.storage import get_store, read_evidence
from vision.config import load_cameras
from vision.detector import OnnxDetector

SECRET = "test-hotline-secret"
SIZE = (640, 360)
VENDING = next(s for s in SCENES if s.name == "vending")


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The vending scene after the handler's visit: the cart gone, the cart still there; the case's box."""
    out = tmp_path_factory.mktemp("recheck-clips")
    gone, cameras_yaml = render_scene(VENDING, "gone", out, 1, SIZE, 5.0, 8.0)
    stays, _ = render_scene(VENDING, "stays", out, 1, SIZE, 5.0, 8.0)
    cameras = load_cameras(cameras_yaml)
    zone = next(z for z in cameras.cameras[0].zones if z.id == VENDING.zone_id)
    box = case_box(stays, OnnxDetector(str(BOOTSTRAP_MODEL), cameras.model), VENDING.kind, zone.polygon)
    return {"gone": gone, "stays": stays, "cameras": cameras_yaml, "box": box}


def _cameras_file(clips: dict, path: Path) -> Path:
    doc = yaml.safe_load(Path(clips["cameras"]).read_text(encoding="utf-8"))
    base = doc["cameras"][0]
    sources = {
        "cam-gone": str(clips["gone"]),
        "cam-stays": str(clips["stays"]),
        "cam-offline": "rtsp://127.0.0.1:9/x",
    }
    doc["cameras"] = [
        {**base, "id": cid, "name": f"核查 {cid}", "source": {"url": url, "loop": True}} for cid, url in sources.items()
    ]  # fmt: skip
    doc["model"] = {**doc.get("model", {}), "path": str(BOOTSTRAP_MODEL)}
    doc["recheck"] = {"default": {"window_s": 5, "auto_close_on_clear": True}}
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


def _dispatched_case(db_url: str, camera_id: str, box) -> str:  # noqa: ANN001
    ev = dataclasses.replace(
        make_event(f"{camera_id}:sidewalk-r:1", camera_id=camera_id), zone_id=VENDING.zone_id, bbox_xyxy=box
    )
    item_id = f"t-{camera_id}"
    Handoff().spool.write(item_id, ev, make_context(camera_id=camera_id, frame_wh=SIZE), make_frames(ev))
    assert service.process_spool_item(item_id) == "done"
    case_id = service.case_id_for(ev.violation_id)
    with session_scope(db_url) as s:
        service.review_case(s, case_id, "u1", "confirm")
        outbox_id = s.scalar(select(Outbox.id).where(Outbox.case_id == case_id))
    assert deliver_outbox(outbox_id) == "sent"
    with session_scope(db_url) as s:
        for status in ("受理", "派遣"):
            body = json.dumps({"case_id": case_id, "status": status}, ensure_ascii=False).encode()
            ts = str(int(time.time()))
            apply_hotline_callback(s, body, sign(SECRET, ts, body), ts)
    return case_id


def _rechecks(db_url: str) -> dict[str, CaseRecheck]:
    with session_scope(db_url) as s:
        return {r.camera_id: r for r in s.scalars(select(CaseRecheck))}


def test_worker_rechecks_dispatched_cases_from_rendered_video(make_stack, private_redis_url, clips, tmp_path):
    stack = make_stack(private_redis_url, metrics_port=0)
    cases = {
        cid: _dispatched_case(stack.db_url, cid, clips["box"])
        for cid in ("cam-gone", "cam-stays", "cam-offline")
    }
    assert {r.state for r in _rechecks(stack.db_url).values()} == {RecheckState.PENDING}
    worker = WorkerStack(
        WorkerOptions(cameras_path=_cameras_file(clips, tmp_path / "cameras.yaml"), config_poll_s=0)
    )
    worker.start()
    try:
        wait_for(
            lambda: (
                len(_rechecks(stack.db_url)) == 3
                and all(r.state == RecheckState.DONE for r in _rechecks(stack.db_url).values())
            ),
            timeout_s=120,
            what="the worker re-checks all three cases",
        )
    finally:
        worker.stop()
    rows = _rechecks(stack.db_url)
    assert (rows["cam-gone"].result, rows["cam-gone"].action) == ("cleared", "closed")
    assert (rows["cam-stays"].result, rows["cam-stays"].action) == ("still_present", "escalated")
    assert (
        rows["cam-stays"].present_bbox_xyxy
        and rows["cam-stays"].present_frames * 2 > rows["cam-stays"].usable_frames
    )
    assert (rows["cam-offline"].result, rows["cam-offline"].frames) == ("inconclusive", 0)
    assert "离线" in rows["cam-offline"].reason and rows["cam-offline"].clean_key == ""  # fmt: skip
    with session_scope(stack.db_url) as s:
        statuses = {
            cid: (s.get(Case, case_id).status, s.get(Case, case_id).escalation)
            for cid, case_id in cases.items()
        }
        assert statuses == {"cam-gone": ("closed", "blue"), "cam-stays": ("dispatched", "yellow"),
                            "cam-offline": ("dispatched", "blue")}  # fmt: skip
        event = s.scalars(
            select(AuditLog).where(AuditLog.entity_id == cases["cam-gone"], AuditLog.action == "recheck")
        ).one()
        gone = rows["cam-gone"]
        assert event.detail["after_clean_sha256"] == gone.clean_sha256
        assert event.detail["after_annotated_sha256"] == gone.annotated_sha256
        assert verify_chain(s)[1] == []
        messages = s.scalars(select(Outbox).where(Outbox.topic == "recheck").order_by(Outbox.id)).all()
        message_ids = {m.payload["case_id"]: m.id for m in messages}
    # the after-photo is stored as evidence is: the object's bytes hash to what the chain says
    for key, sha in ((gone.clean_key, gone.clean_sha256), (gone.annotated_key, gone.annotated_sha256)):
        assert read_evidence(get_store(), key, sha)
    assert set(message_ids) == set(cases.values())
    for _ in range(2):  # a redelivered task sends nothing twice
        deliver_outbox(message_ids[cases["cam-gone"]])
    received = [
        json.loads(r["body"])
        for r in stack.hotline.requests
        if r["headers"].get("Idempotency-Key") == f"recheck:{gone.id}"
    ]
    assert len(received) == 1
    assert (received[0]["result"], received[0]["status"], received[0]["case_id"]) == (
        "cleared",
        "closed",
        cases["cam-gone"],
    )
    assert [p["sha256"] for p in received[0]["after_photo"]] == [gone.clean_sha256, gone.annotated_sha256]
