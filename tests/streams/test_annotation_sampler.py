"""The annotation sampler (streams.annotation_sampler): which real frames it keeps for labelling, its limits,
and its writer (evidence store + database, on its own thread; failures dropped and counted)."""

from __future__ import annotations

import datetime as dt
import re
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from prometheus_client import REGISTRY, generate_latest
from sqlalchemy import select

from streams.annotation_sampler import AnnotationSampler, SamplerConfig, SamplingPolicy
from streams.camera import CameraProcessor
from streams.capture import SampledFrame
from streams.observers import FrameView
from streams.run import WorkerOptions, WorkerStack
from tests.streams.conftest import camera_dict
from tests.streams.helpers import write_clip
from tests.waiting import wait_for
from urbaneye.db.annotations import AnnotationItem, SampleReason
from urbaneye.db.migrate import upgrade
from urbaneye.db.session import session_factory
from urbaneye.storage import FsEvidenceStore, get_store, read_evidence
from vision.config import ModelConfig, parse_cameras
from vision.types import OBJECT_KINDS, UNKNOWN_OBJECT_CLASS_ID, Detections, ObjectKind

#: 2026-01-05 10:00 in Asia/Shanghai (UTC+8): bucket 08-12.
T0 = dt.datetime(2026, 1, 5, 2, 0, tzinfo=dt.UTC).timestamp()
GARBAGE = OBJECT_KINDS.index(ObjectKind.GARBAGE)
PERSON = OBJECT_KINDS.index(ObjectKind.PERSON)


def _camera(cid: str = "cam-1"):
    return parse_cameras({"cameras": [{"id": cid, "source": {"url": "x.mp4"}}]}).cameras[0]


CAMERA = _camera()


def _image(seed: int) -> np.ndarray:
    """A distinct picture per seed (blocks of random grey), so no two seeds are near-duplicates."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (9, 16, 1), np.uint8)
    return np.repeat(cv2.resize(small, (160, 90), interpolation=cv2.INTER_NEAREST)[..., None], 3, axis=2)


def _dets(*rows: tuple[float, int, tuple[float, float, float, float]]) -> Detections:
    if not rows:
        return Detections.empty()
    return Detections(
        xyxy=[r[2] for r in rows], confidence=[r[0] for r in rows], class_id=[r[1] for r in rows]
    )


def _unknown(*boxes: tuple[float, float, float, float]) -> Detections:
    if not boxes:
        return Detections.empty()
    return Detections(
        xyxy=list(boxes), confidence=[0.8] * len(boxes), class_id=[UNKNOWN_OBJECT_CLASS_ID] * len(boxes)
    )


def _view(
    ts_s: float,
    seed: int,
    detections: Detections | None = None,
    unknown: Detections | None = None,
    detected: bool = True,
    camera=CAMERA,  # noqa: ANN001
) -> FrameView:
    at = dt.datetime.fromtimestamp(ts_s, dt.UTC)
    frame = SampledFrame(camera.id, _image(seed), ts_s, True, at, 0.0, seed)
    return FrameView(
        camera, frame, ts_s, detections or Detections.empty(), unknown or Detections.empty(), detected, "m-1"
    )


def _policy(**limits: float) -> SamplingPolicy:
    model = ModelConfig(default_score_threshold=0.35, score_thresholds={"garbage": 0.6})
    return SamplingPolicy(SamplerConfig(**limits), model)


def _reasons(policy: SamplingPolicy, views: list[FrameView]) -> list[SampleReason | None]:
    out = []
    for v in views:
        sample = policy.decide(v)
        out.append(None if sample is None else sample.reason)
    return out


BOX = (10.0, 10.0, 60.0, 50.0)
FAR_BOX = (100.0, 40.0, 150.0, 85.0)


@pytest.mark.parametrize(
    ("detections", "unknown", "detected", "expected"),
    [
        (_dets((0.40, PERSON, BOX)), None, True, SampleReason.NEAR_THRESHOLD),  # 0.35 + 0.15 > 0.40
        (_dets((0.55, PERSON, BOX)), None, True, None),  # sure of it
        (_dets((0.70, GARBAGE, BOX)), None, True, SampleReason.NEAR_THRESHOLD),  # garbage's own 0.6
        (_dets((0.80, GARBAGE, BOX)), None, True, None),
        (_dets((0.40, PERSON, BOX)), None, False, None),  # carried scores are not the model's doubt
        (None, _unknown(BOX), False, SampleReason.UNKNOWN_REGION),
        (_dets((0.90, GARBAGE, BOX)), _unknown(BOX), True, None),  # the model explains the region
        (_dets((0.90, GARBAGE, BOX)), _unknown(FAR_BOX), True, SampleReason.UNKNOWN_REGION),
    ],
)
def test_reason(detections, unknown, detected, expected):  # noqa: ANN001
    assert _policy().reason(_view(T0, 1, detections, unknown, detected)) == expected


def test_periodic_one_frame_per_time_of_day_bucket_in_camera_local_time():
    policy = _policy()
    hour = 3600.0
    views = [_view(T0 + i * 0.5 * hour, seed=i) for i in range(5)]  # 10:00 .. 12:00 local
    reasons = _reasons(policy, views)
    assert reasons == [SampleReason.PERIODIC, None, None, None, SampleReason.PERIODIC]  # 08-12, then 12-16
    first = policy.decide(_view(T0 + 24 * hour, seed=50))  # the next day's 08-12
    assert first is not None and first.time_bucket == "08-12" and first.reason is SampleReason.PERIODIC


def test_periodic_needs_a_detected_frame_and_asks_for_a_full_scan():
    policy = _policy()
    assert policy.periodic_due("cam-1", T0) is False  # a camera it has not seen yet
    assert policy.decide(_view(T0, 1, detected=False)) is None  # carried proposals: wait for a detection
    assert policy.periodic_due("cam-1", T0 + 1)
    assert policy.decide(_view(T0 + 1, 2)).reason is SampleReason.PERIODIC
    assert policy.periodic_due("cam-1", T0 + 2) is False


def test_gap_hourly_budget_and_camera_independence():
    policy = _policy(min_gap_s=60.0, max_per_hour=3)
    near = _dets((0.40, PERSON, BOX))
    ts = [T0 + 30 * i for i in range(12)]  # every 30 s for 6 minutes
    reasons = _reasons(policy, [_view(t, seed=i, detections=near) for i, t in enumerate(ts)])
    kept = [t - T0 for t, r in zip(ts, reasons, strict=True) if r is not None]
    assert kept == [0.0, 60.0, 120.0]  # 60 s apart, then the hour's budget of 3 is spent
    assert policy.decide(_view(T0 + 3600, seed=99, detections=near)) is not None  # a new hour
    other = _camera("cam-2")
    assert policy.decide(_view(T0 + 30, seed=100, detections=near, camera=other)) is not None


def test_near_identical_frames_are_not_kept_twice():
    policy = _policy(min_gap_s=0.0)
    near = _dets((0.40, PERSON, BOX))
    first = policy.decide(_view(T0, seed=7, detections=near))
    assert first is not None
    same = _view(T0 + 10, seed=7, detections=near)
    noisy = same.frame.image.astype(np.int16) + np.random.default_rng(0).integers(
        -2, 3, same.frame.image.shape
    )
    frame = SampledFrame(
        "cam-1", np.clip(noisy, 0, 255).astype(np.uint8), T0 + 10, True, same.frame.frame_time, 0, 8
    )
    assert policy.decide(FrameView(CAMERA, frame, T0 + 10, near, Detections.empty(), True, "m-1")) is None
    assert policy.duplicates == 1
    assert policy.decide(_view(T0 + 20, seed=8, detections=near)) is not None  # another picture


def test_a_duplicate_restarts_the_gap():
    """A scene that stays the same (a pile all afternoon) is compared once per gap, not on every frame."""
    policy = _policy(min_gap_s=60.0)
    near = _dets((0.40, PERSON, BOX))
    assert policy.decide(_view(T0, seed=9, detections=near)) is not None
    assert policy.decide(_view(T0 + 70, seed=9, detections=near)) is None and policy.duplicates == 1
    assert policy.decide(_view(T0 + 80, seed=10, detections=near)) is None  # within the gap of the duplicate
    assert policy.decide(_view(T0 + 131, seed=10, detections=near)) is not None


def test_sample_carries_proposals_of_model_and_static_detector():
    policy = _policy()
    view = _view(T0, 3, _dets((0.9, GARBAGE, BOX)), _unknown(FAR_BOX))
    sample = policy.decide(view)
    assert sample is not None and sample.reason is SampleReason.UNKNOWN_REGION
    assert [(p.label, p.source, p.xyxy) for p in sample.proposals] == [
        ("garbage", "model", BOX),
        ("unknown_object", "unknown", FAR_BOX),
    ]
    view.frame.image[:] = 0  # the sample is a copy: the camera may reuse its buffer
    assert sample.image.any()


# ------------------------------------------------------------------------------- writer (real services)


@pytest.fixture
def sessions(pg_url):  # noqa: ANN001, ANN201
    upgrade(pg_url)
    return session_factory(pg_url)


@pytest.fixture
def fs_store(tmp_path: Path) -> FsEvidenceStore:
    store = FsEvidenceStore(tmp_path / "evidence", "secret-for-tests-0123456789abcdef")
    store.ensure_ready()
    return store


def _items(sessions) -> list[AnnotationItem]:  # noqa: ANN001
    with sessions() as s:
        return list(s.scalars(select(AnnotationItem).order_by(AnnotationItem.frame_at)))


def test_writer_stores_frame_and_provenance(sessions, fs_store):  # noqa: ANN001
    sampler = AnnotationSampler(sessions, fs_store, ModelConfig(), SamplerConfig(min_gap_s=0.0))
    try:
        sampler.observe(_view(T0, 1, _dets((0.40, PERSON, BOX)), _unknown(FAR_BOX)))
        wait_for(lambda: sampler.counts["queued"] == 1, what="sample written")
    finally:
        sampler.close()
    (item,) = _items(sessions)
    assert (item.camera_id, item.reason, item.time_bucket, item.model_version) == (
        "cam-1", "unknown_region", "08-12", "m-1",
    )  # fmt: skip
    assert item.status == "pending" and (item.width, item.height) == (160, 90)
    assert item.frame_at == dt.datetime.fromtimestamp(T0, dt.UTC)
    assert item.key.startswith("annotations/cam-1/2026/01/05/")
    data = read_evidence(fs_store, item.key, item.sha256)  # the bytes match the recorded hash
    assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR).shape == (90, 160, 3)
    assert [(p["label"], p["source"]) for p in item.proposals] == [
        ("person", "model"),
        ("unknown_object", "unknown"),
    ]


def test_pending_items_per_camera_are_bounded(sessions, fs_store):  # noqa: ANN001
    config = SamplerConfig(min_gap_s=0.0, max_pending_per_camera=2)
    sampler = AnnotationSampler(sessions, fs_store, ModelConfig(), config)
    near = _dets((0.40, PERSON, BOX))
    try:
        for i in range(4):
            sampler.observe(_view(T0 + i, seed=20 + i, detections=near))
        wait_for(lambda: sampler.counts["queued"] + sampler.counts["dropped_pending"] == 4, what="4 handled")
    finally:
        sampler.close()
    assert sampler.counts["queued"] == 2 and sampler.counts["dropped_pending"] == 2
    assert len(_items(sessions)) == 2


def test_failing_store_or_database_drops_and_counts(sessions, tmp_path):  # noqa: ANN001
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the store's directory should be")
    broken_store = FsEvidenceStore(blocked, "secret-for-tests-0123456789abcdef")
    sampler = AnnotationSampler(sessions, broken_store, ModelConfig(), SamplerConfig(min_gap_s=0.0))
    near = _dets((0.40, PERSON, BOX))
    try:
        sampler.observe(_view(T0, seed=30, detections=near))  # returns at once; the writer fails
        wait_for(lambda: sampler.counts["failed"] == 1, what="failed upload counted")
    finally:
        sampler.close()
    assert _items(sessions) == []

    no_db = session_factory("postgresql+psycopg://postgres@127.0.0.1:5432/ue_no_such_database")
    good_store = FsEvidenceStore(tmp_path / "ok", "secret-for-tests-0123456789abcdef")
    sampler = AnnotationSampler(no_db, good_store, ModelConfig(), SamplerConfig(min_gap_s=0.0))
    try:
        sampler.observe(_view(T0, seed=31, detections=near))
        sampler.observe(_view(T0 + 1, seed=32, detections=near))
        wait_for(lambda: sampler.counts["failed"] == 2, what="database failures counted")
    finally:
        sampler.close()


class _NearDetector:
    """The model as a camera would run it here: one unsure person on every frame."""

    version = "near-1"

    def detect(self, frame_bgr: np.ndarray) -> Detections:
        return _dets((0.41, PERSON, BOX))


def test_camera_processor_feeds_the_sampler(sessions, fs_store):  # noqa: ANN001
    cf = parse_cameras({"cameras": [{"id": "cam-p", "source": {"url": "x.mp4"}}]})
    sampler = AnnotationSampler(sessions, fs_store, cf.model, SamplerConfig(min_gap_s=0.0, max_per_hour=2))
    processor = CameraProcessor(cf.cameras[0], cf.rules, _NearDetector(), observers=[sampler])
    start = dt.datetime(2026, 1, 5, 2, 0, tzinfo=dt.UTC)
    try:
        for i in range(6):
            at = start + dt.timedelta(seconds=i)
            processor.process(SampledFrame("cam-p", _image(40 + i), at.timestamp(), True, at, 0.0, i, i == 0))
        wait_for(lambda: sampler.counts["queued"] == 2, what="two samples (the hourly budget)")
    finally:
        sampler.close()
    items = _items(sessions)
    assert [i.camera_id for i in items] == ["cam-p", "cam-p"]
    assert {i.reason for i in items} <= {"near_threshold", "periodic"}


def _metric(name: str, labels: str) -> float:
    """The value of ``name{labels}`` in this process's Prometheus registry (0 when absent)."""
    text = generate_latest(REGISTRY).decode()
    found = re.search(rf"^{name}\{{{re.escape(labels)}\}} ([0-9.e+]+)$", text, re.M)
    return float(found[1]) if found else 0.0


def test_worker_stack_samples_its_cameras(tmp_path, cameras_yaml, settings_env):  # noqa: ANN001
    """The production worker (and ``urbaneye run``, which starts the same ``WorkerStack``) has the sampler:
    a camera's first detected frame of its time-of-day bucket lands in the queue, its frame in the store."""
    url = f"sqlite:///{tmp_path / 'ue.db'}"
    settings = settings_env(database_url=url, broker_url="memory://", evidence_backend="fs", metrics_port=0)
    upgrade(url)
    clip = write_clip(tmp_path / "loop.mp4", seconds=2, fps=10)
    cams = cameras_yaml(camera_dict("cam-1", str(clip), source={"url": str(clip), "loop": True}))
    stack = WorkerStack(WorkerOptions(cameras_path=cams, config_poll_s=0)).start()
    try:
        sessions = session_factory(url)
        item = wait_for(lambda: next(iter(_items(sessions)), None), what="a sampled frame of cam-1")
        # and Prometheus sees it (the counter moves once the writer has counted the frame it stored)
        wait_for(
            lambda: _metric("urbaneye_annotation_samples_total", 'outcome="queued"') >= 1, 30, "the metric"
        )
        assert _metric("urbaneye_annotation_samples_total", 'outcome="sampled"') >= 1
    finally:
        stack.stop()
    # the sampler's writer stopped with the worker (it used to outlive it)
    assert [t for t in threading.enumerate() if t.name == "annotation-sampler" and t.is_alive()] == []
    assert item.camera_id == "cam-1" and item.reason == "periodic" and item.time_bucket == "08-12"
    read_evidence(get_store(settings), item.key, item.sha256)  # the frame is in the evidence store
