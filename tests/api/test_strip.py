"""GET /api/v1/cases/{id}/strip: a case's frames across the dwell, in time order, each fetchable.

The case is recorded the way a stream worker's hand-off records it (the evidence rule, the spool, the case
service, the upload to the store), with the frame strip the evidence keeper adds at the dwell crossing.
"""

from __future__ import annotations

import datetime as dt
import hashlib

import cv2
import numpy as np

from tests.api.conftest import scene_jpeg
from urbaneye.cases.handoff import verify_evidence_frames
from urbaneye.cases.service import record_case_from_spool
from urbaneye.cases.spool import STRIP_SEQ_BASE, CaseContext, EvidenceFrame, Spool, make_item_id
from urbaneye.cases.uploads import UploadOutcome, upload_spooled_evidence
from vision.evidence import render_strip_frame
from vision.types import Escalation, ViolationEvent, ViolationKind

SIGHTED = dt.datetime(2026, 12, 3, 13, 0, 11, tzinfo=dt.UTC)
DWELL_S = 140.0
STRIP_FRAMES = 8


def strip_jpeg(i: int) -> bytes:
    small = cv2.imdecode(np.frombuffer(scene_jpeg(f"strip {i}", w=640, h=360, seed=i), np.uint8), 1)
    return render_strip_frame(small, (256, 162, 371, 252), None, f"21:0{i}:00  {i + 1}/{STRIP_FRAMES}")


def record_strip_case(db, store, settings, violation_id: str = "v-strip-1") -> str:  # noqa: ANN001
    """A case opened with two legal moments DWELL_S apart and STRIP_FRAMES strip frames between them."""
    crossing = SIGHTED + dt.timedelta(seconds=DWELL_S)
    frames: list[EvidenceFrame] = []
    for seq, at in ((1, SIGHTED), (2, crossing)):
        for variant in ("clean", "annotated", "crop"):
            frames.append(EvidenceFrame(seq, variant, scene_jpeg(f"seq {seq} {variant}", seed=seq), at))
    for i in range(STRIP_FRAMES):
        at = SIGHTED + dt.timedelta(seconds=DWELL_S * (i + 1) / (STRIP_FRAMES + 1))
        frames.append(EvidenceFrame(STRIP_SEQ_BASE + i, "annotated", strip_jpeg(i), at))
    event = ViolationEvent(
        event="opened",
        violation_id=violation_id,
        camera_id="cam-1",
        zone_id="z-gate",
        kind=ViolationKind.STREET_VENDING,
        ts_s=crossing.timestamp(),
        bbox_xyxy=(192.0, 121.0, 278.0, 189.0),
        score=0.86,
        gbt_code="0501",
        escalation=Escalation.BLUE,
        dwell_s=DWELL_S,
        first_seen_s=SIGHTED.timestamp(),
        evidence_request=True,
    )
    context = CaseContext(
        camera_id="cam-1",
        frame_wh=(480, 270),
        zone_name="人民路北口",
        event_time=crossing,
        evidence_stream="main",
    )
    verify_evidence_frames(event, frames)  # what Handoff.submit checks before spooling
    spool = Spool(settings.spool_dir)
    item_id = make_item_id(event.violation_id, event.event, event.ts_s)
    assert spool.write(item_id, event, context, frames)
    case = record_case_from_spool(db, item_id, spool=spool)
    db.commit()
    assert (
        upload_spooled_evidence(item_id, spool=spool, store=store, url=settings.db_url) == UploadOutcome.DONE
    )
    return case.id


def test_strip_lists_every_moment_in_time_order_and_each_opens(
    client,
    db,
    store,
    api_settings,
    users,  # noqa: ANN001
) -> None:
    case_id = record_strip_case(db, store, api_settings)
    r = client.get(f"/api/v1/cases/{case_id}/strip", headers=users.headers("viewer"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["case_id"] == case_id
    frames = body["frames"]
    seqs = [f["seq"] for f in frames]
    # first sighting, the strip across the dwell, the dwell crossing
    assert seqs == [1, *range(STRIP_SEQ_BASE, STRIP_SEQ_BASE + STRIP_FRAMES), 2]
    times = [dt.datetime.fromisoformat(f["frame_ts"].replace("Z", "+00:00")) for f in frames]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert all(f["frame_ts"].endswith("Z") for f in frames)
    assert (times[-1] - times[0]).total_seconds() == DWELL_S
    detail = client.get(f"/api/v1/cases/{case_id}", headers=users.headers("viewer")).json()
    annotated = {e["seq"]: e["sha256"] for e in detail["evidence"] if e["variant"] == "annotated"}
    for f in frames:
        assert f["sha256"] == annotated[f["seq"]]  # each moment's annotated picture
        image = client.get(f["url"])
        assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
        assert hashlib.sha256(image.content).hexdigest() == f["sha256"]
    strip_image = cv2.imdecode(np.frombuffer(client.get(frames[1]["url"]).content, np.uint8), 1)
    assert strip_image.shape == (360, 640, 3)


def test_strip_of_a_case_without_strip_frames_is_its_legal_moments(
    client,
    make_case,
    users,  # noqa: ANN001
) -> None:
    case = make_case()
    frames = client.get(f"/api/v1/cases/{case.id}/strip", headers=users.headers("reviewer")).json()["frames"]
    assert [f["seq"] for f in frames] == [1, 2]


def test_strip_needs_a_login_and_names_a_missing_case_in_chinese(client, users) -> None:  # noqa: ANN001
    assert client.get("/api/v1/cases/nope/strip").status_code == 401
    r = client.get("/api/v1/cases/nope/strip", headers=users.headers("viewer"))
    assert r.status_code == 404 and "案件 nope 不存在" in r.json()["detail"]
