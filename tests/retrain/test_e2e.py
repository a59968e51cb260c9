"""End to end on synthetic scenes: cases -> verdicts -> dataset -> CPU fine-tune -> gate -> registry ->
promotion -> hot reload in a running ModelWatcher -> the next case carries the new model version.

PostgreSQL (``pg_url``), S3 over HTTP (``s3_server``), the real case hand-off (spool + eager Celery task),
the real trainer (ultralytics, 1 epoch at 64 px) and our ONNX evaluation path.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid

import pytest

from datasets.builder import BuildOptions, datasets_store, load_manifest, read_yolo_split
from models.retrain import RetrainOptions, run_retraining
from urbaneye.db.models import Case, DatasetVersion, ModelVersion
from urbaneye.hot_reload import ModelWatcher
from vision.types import DEFAULT_GBT_CODE, Escalation, ViolationEvent, ViolationKind

#: Object kind of a ground-truth box -> the violation a camera would raise for it.
VIOLATION_OF = {
    "garbage": ViolationKind.EXPOSED_GARBAGE,
    "vending_stall": ViolationKind.STREET_VENDING,
    "grill": ViolationKind.OPEN_AIR_BARBECUE,
}
DAY0 = dt.datetime(2025, 4, 1, 9, 0, tzinfo=dt.UTC)


def submit_case(handoff, jpeg: bytes, wh, box, kind, camera_id, at, model_version) -> str:
    from urbaneye.cases.handoff import CaseContext, EvidenceFrame

    vid = f"{camera_id}-{uuid.uuid4().hex[:10]}"
    event = ViolationEvent(
        event="opened",
        violation_id=vid,
        camera_id=camera_id,
        zone_id="z1",
        kind=kind,
        ts_s=200.0,
        bbox_xyxy=tuple(float(v) for v in box),
        score=0.8,
        gbt_code=DEFAULT_GBT_CODE[kind],
        escalation=Escalation.BLUE,
        dwell_s=190.0,
        first_seen_s=10.0,
        evidence_request=True,
    )
    frames = [
        EvidenceFrame(1, "clean", jpeg, at - dt.timedelta(seconds=190)),
        EvidenceFrame(2, "clean", jpeg, at),
    ]
    context = CaseContext(camera_id, model_version=model_version, frame_wh=tuple(wh), event_time=at)
    handoff.submit(event, frames, context)
    return vid


@pytest.mark.slow
def test_reviews_to_hot_reloaded_model(db, s3_settings, settings_env, tiny_parent, tmp_path):
    from urbaneye.cases.service import review_case
    from urbaneye.cli import main as cli_main

    parent_pt, parent_onnx = tiny_parent
    settings = settings_env(model_path=parent_onnx, models_dir=tmp_path / "models")
    assert settings.evidence_backend == "s3" and parent_pt.with_suffix(".onnx") == parent_onnx

    # the stream worker's model: no active model yet, so the watcher serves the fallback (bootstrap) file
    watcher = ModelWatcher("default", poll_s=0.1, session_factory=db, settings=settings).start()
    try:
        _run_loop(watcher, db, settings, tmp_path, review_case, cli_main)
    finally:
        watcher.stop()


def _run_loop(watcher, db, settings, tmp_path, review_case, cli_main) -> None:
    import cv2

    from datasets.synth import generate_images
    from urbaneye.cases.handoff import Handoff

    data_yaml = generate_images(tmp_path / "scenes", count=16, seed=11, val_fraction=0.0, size=(320, 192))
    handoff = Handoff(settings.spool_dir)
    truth: dict[str, bool] = {}
    for n, (img_path, labels) in enumerate(read_yolo_split(data_yaml, "train")):
        jpeg = img_path.read_bytes()
        h, w = cv2.imread(str(img_path)).shape[:2]
        cam = f"cam-{n % 4}"
        at = DAY0 + dt.timedelta(days=n)  # one scene per case: days apart
        _, version = watcher.current()
        real = [lb for lb in labels if lb.label in VIOLATION_OF]
        if real:  # a true violation: the object the generator drew
            vid = submit_case(
                handoff, jpeg, (w, h), real[0].xyxy, VIOLATION_OF[real[0].label], cam, at, version
            )
            truth[vid] = True
        else:  # a false alarm on empty pavement
            box = (5, h - 40, 45, h - 5)
            vid = submit_case(handoff, jpeg, (w, h), box, ViolationKind.EXPOSED_GARBAGE, cam, at, version)
            truth[vid] = False
    assert sum(truth.values()) >= 4 and len(truth) == 16

    with db() as s:
        cases = s.query(Case).all()
        assert len(cases) == 16, "every hand-off became a case (eager Celery task on memory://)"
        assert all(c.model_version.startswith("tiny-parent-") for c in cases)
        for c in cases:
            if truth[c.violation_id]:
                review_case(s, c.id, "reviewer-1", "confirm")
            else:
                review_case(s, c.id, "reviewer-1", "reject", reason="false_detection")
        s.commit()

    options = RetrainOptions(
        camera_group="default",
        build=BuildOptions(
            synth_share=0.2, synth_seed=3, synth_size=(320, 192), val_fraction=0.3, pseudo_conf=0.9
        ),
        recipe="tiny",
        epochs=1,
        imgsz_px=64,
        regression_count=6,
        regression_seed=7,
        # the gate is table-tested in test_gate.py; here an untrained parent scores ~0 everywhere, so accept
        # any val result and any regression loss to exercise the promote path end to end
        min_val_gain_map50=-1.0,
        max_class_drop_ap50=1.0,
        work_dir=tmp_path / "work",
    )
    result = run_retraining(options, session_factory=db, settings=settings)
    assert result.promoted and result.gate.promote
    assert result.parent.startswith("bootstrap-")
    with db() as s:
        mv = s.get(ModelVersion, result.version)
        parent = s.get(ModelVersion, result.parent)
        ds = s.get(DatasetVersion, result.dataset_version)
        assert (mv.status, parent.status) == ("active", "retired")
        assert mv.parent == parent.version and mv.dataset_version == ds.version
        assert mv.gate["decision"] == "promote" and mv.gate["checks"][0]["name"] == "val_map50"
        # val compared on reviewed classes only (not the parent's pseudo-labels)
        assert set(mv.metrics["val_gate"]["classes"]) <= set(VIOLATION_OF)
        assert mv.gate["checks"][0]["new"] == mv.metrics["val_gate"]["map50"]
        assert set(mv.metrics) >= {"val", "regression", "parent"} and "per_class" in mv.metrics["regression"]
        # a fine-tune: the recipe's lr0 scaled down, no warm-up, exactly the epochs asked for
        args = mv.metrics["training"]["train_args"]
        assert args["lr0"] == pytest.approx(0.0025) and args["warmup_epochs"] == 0.0 and args["epochs"] == 1
        assert mv.sha256 and mv.onnx_uri.startswith("s3://") and mv.weights_uri.startswith("s3://")
        assert mv.training_time_s > 0 and mv.hardware
        assert ds.counts["val"]["images"] > 0 and ds.counts["train"]["synthetic"] > 0
        assert ds.counts["train"]["negatives"] + ds.counts["val"]["negatives"] >= 1
        # the dataset lives in the datasets bucket (moto S3): manifest checked against its sha256, images too
        assert ds.manifest_uri.startswith(f"s3://{settings.s3_datasets_bucket}/manifests/")
        store = datasets_store(settings)
        manifest = load_manifest(s, ds.version, store)
        assert {it["source"] for it in manifest["items"]} == {"case", "synth"}
        for item in manifest["items"]:
            assert hashlib.sha256(store.get(item["key"])).hexdigest() == item["image_sha256"]

    # the running watcher picks the promoted model up; the next case records it
    assert watcher.wait_for_version(result.version, timeout_s=60), watcher.status()
    detector, version = watcher.current()
    assert version == result.version and detector.sha256 == mv.sha256
    assert detector.imgsz == (96, 128), "the new model keeps the deployed model's input shape"
    img_path, labels = read_yolo_split(data_yaml, "train")[0]
    vid = submit_case(
        handoff,
        img_path.read_bytes(),
        (320, 192),
        (10, 10, 50, 50),
        ViolationKind.EXPOSED_GARBAGE,
        "cam-0",
        DAY0 + dt.timedelta(days=40),
        version,
    )
    watcher.stop()
    with db() as s:
        assert s.query(Case).filter_by(violation_id=vid).one().model_version == result.version

    # the registry as the CLI shows it
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert cli_main(["models", "list", "--json"]) == 0
    listed = json.loads(buf.getvalue())
    assert listed["active"] == {"default": result.version}
    row = next(r for r in listed["models"] if r["version"] == result.version)
    assert (
        row["status"] == "active"
        and row["dataset_version"] == result.dataset_version
        and row["sha256"] == mv.sha256
    )
