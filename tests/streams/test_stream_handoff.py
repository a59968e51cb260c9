"""Events → evidence → hand-off → case, through the real Handoff spool and the in-process broker."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from streams.events import EvidenceKeeper, HandoffQueue
from streams.replay import replay_video
from tests.streams.conftest import GARBAGE_BOX, camera_dict
from tests.streams.helpers import box_painter, write_clip
from vision.config import load_cameras
from vision.detector import OnnxDetector


@pytest.fixture
def embedded(settings_env: Callable[..., object], tmp_path: Path) -> object:
    """Embedded defaults in a temp dir: SQLite, file evidence store, memory:// broker (tasks run eagerly)."""
    settings = settings_env(broker_url="memory://", evidence_backend="fs", database_url="")
    from urbaneye.db.migrate import upgrade

    upgrade(settings.db_url)
    return settings


def test_opened_and_closed_become_one_case_with_two_evidence_moments(
    embedded: object, tmp_path: Path, cameras_yaml: Callable[..., Path]
) -> None:
    from urbaneye.cases.handoff import Handoff
    from urbaneye.db.models import Case, Evidence
    from urbaneye.db.session import session_scope
    from urbaneye.storage import get_store

    clip = write_clip(tmp_path / "g.mp4", seconds=20, fps=5, paint=box_painter(GARBAGE_BOX, 0.5, 16.0))
    cameras_file = load_cameras(cameras_yaml(camera_dict("cam-1", str(clip), garbage_dwell_s=5)))
    camera = cameras_file.camera("cam-1")
    detector = OnnxDetector(cameras_file.model.path, cameras_file.model)
    handoff = Handoff(embedded.spool_dir)
    submitted = []
    queue = HandoffQueue(EvidenceKeeper({"cam-1": camera}, handoff, on_submitted=submitted.append)).start()
    events = []
    replay_video(camera, cameras_file.rules, clip, detector, events.append, sink=queue)
    queue.close()  # flush: everything queued is handed off before returning
    handoff.close()

    assert [e.event for e in events] == ["sighting", "opened", "closed"]
    assert [e.event for e in submitted] == ["opened", "closed"]
    sighting, opened, _ = events
    start = dt.datetime(2025, 6, 1, 2, 0, tzinfo=dt.UTC)  # camera start_time 10:00+08:00
    with session_scope(embedded.db_url) as session:
        cases = session.query(Case).all()
        assert len(cases) == 1
        case = cases[0]
        assert (case.violation_id, case.camera_id, case.kind, case.gbt_code) == (
            opened.violation_id,
            "cam-1",
            "exposed_garbage",
            "0102",
        )
        assert case.ended_at is not None  # the close arrived
        rows = (
            session.query(Evidence).filter_by(case_id=case.id).order_by(Evidence.seq, Evidence.variant).all()
        )
        got = [(r.seq, r.variant) for r in rows]
        assert got == [(s, v) for s in (1, 2) for v in ("annotated", "clean", "crop")]
        times = {
            r.seq: r.frame_ts.replace(tzinfo=dt.UTC) if r.frame_ts.tzinfo is None else r.frame_ts
            for r in rows
        }
        # evidence is timestamped by video time: start_time + the frame's position
        assert times[1] == start + dt.timedelta(seconds=round(sighting.ts_s, 6))
        assert times[2] == start + dt.timedelta(seconds=round(opened.ts_s, 6))
        assert (times[2] - times[1]).total_seconds() >= cameras_file.rules.evidence_min_gap_s
        clean = next(r for r in rows if r.seq == 2 and r.variant == "clean")
        data = get_store(embedded).get(clean.key)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (240, 320, 3)
    x1, y1, x2, y2 = GARBAGE_BOX
    assert image[y1 + 5 : y2 - 5, x1 + 5 : x2 - 5].mean() > 200  # the clean frame shows the pile


def test_a_violation_reopened_within_the_cooldown_updates_its_case(
    embedded: object, tmp_path: Path, cameras_yaml: Callable[..., Path]
) -> None:
    """The rules re-open a violation that closed within ``reopen_cooldown_s`` (same id, no new sighting):
    the keeper hands it off as an update of the same case from the next evidence seq, not as an 'opened'
    the hand-off would refuse for want of a first sighting."""
    from urbaneye.cases.handoff import Handoff
    from urbaneye.db.models import Case, Evidence
    from urbaneye.db.session import session_scope

    first, second = box_painter(GARBAGE_BOX, 0.5, 16.0), box_painter(GARBAGE_BOX, 24.0, 34.0)
    clip = write_clip(tmp_path / "g.mp4", seconds=40, fps=5, paint=lambda f, t: (first(f, t), second(f, t)))
    path = cameras_yaml(camera_dict("cam-1", str(clip), garbage_dwell_s=5), rules={"reopen_cooldown_s": 60})
    cameras_file = load_cameras(path)
    camera = cameras_file.camera("cam-1")
    detector = OnnxDetector(cameras_file.model.path, cameras_file.model)
    handoff = Handoff(embedded.spool_dir)
    submitted = []
    keeper = EvidenceKeeper({"cam-1": camera}, handoff, on_submitted=submitted.append)
    queue = HandoffQueue(keeper).start()
    events = []
    replay_video(camera, cameras_file.rules, clip, detector, events.append, sink=queue)
    queue.close()
    handoff.close()

    assert [e.event for e in events] == ["sighting", "opened", "closed", "opened", "closed"]
    assert len({e.violation_id for e in events}) == 1  # the same violation came back
    assert [e.event for e in submitted] == ["opened", "closed", "updated", "closed"]
    assert keeper.failed == 0
    with session_scope(embedded.db_url) as session:
        (case,) = session.query(Case).all()
        seqs = {r.seq for r in session.query(Evidence).filter_by(case_id=case.id)}
        assert seqs == {1, 2, 3}  # the re-open's frame is the case's third moment
        assert case.ended_at is not None
