"""``urbaneye models import``: a COCO-pretrained YOLO in one command, hot-reloaded by a running worker;
non-detectors and mismatched class maps refused in one line; the bootstrap model always registered;
failed gates promoted only with force; per-model reviewer reports — on PostgreSQL, through the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from models.gate import GateDecision
from models.importer import ModelImportError, import_model
from streams.worker import DetectorPool
from tests.retrain.conftest import T0, add_case
from tests.waiting import wait_for
from urbaneye import registry
from urbaneye.db.models import AuditLog, ModelVersion
from urbaneye.model_report import model_report
from vision.class_maps import COCO80_LABELS
from vision.config import CamerasFile, ModelConfig
from vision.digest import sha256_file
from vision.types import OBJECT_KINDS, ObjectKind

REPO = Path(__file__).resolve().parents[2]


def urbaneye(*args: str) -> subprocess.CompletedProcess[str]:
    """The real CLI in a child process (it reads the test's URBANEYE_* settings from the environment)."""
    env = {**os.environ, "YOLO_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "urbaneye.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def registry_db(db, settings_env, tmp_path):  # noqa: ANN001, ANN201
    """PostgreSQL with every table, registry artefacts under tmp_path."""
    settings_env(models_dir=tmp_path / "models")
    return db


def kind_of(detector, label: str) -> ObjectKind | None:  # noqa: ANN001
    k = int(detector.kind_of_class[detector.labels.index(label)])
    return None if k < 0 else OBJECT_KINDS[k]


def test_import_coco_onnx_activates_it_in_a_running_worker(registry_db, coco_models, tmp_path) -> None:  # noqa: ANN001
    # A worker's detector pool, already running frames on the shipped model (nothing registered yet);
    # the cameras file ignores "bicycle", which must still win over the imported model's own map.
    cameras = CamerasFile(model=ModelConfig(class_map={"bicycle": None}))
    pool = DetectorPool(cameras, session_factory=registry_db, poll_s=0.05)
    source = pool.source("default")
    seen: list[str] = []
    stop = threading.Event()
    frame = np.zeros((96, 160, 3), np.uint8)

    def loop() -> None:  # the stream worker's shape: one (detector, version) snapshot per frame
        while not stop.is_set():
            detector, version = source()
            detector.detect(frame)
            seen.append(version)

    thread = threading.Thread(target=loop)
    thread.start()
    try:
        wait_for(lambda: seen, what="the first frame on the shipped model")
        run = urbaneye(
            "models", "import", str(coco_models["detect"]),
            "--name", "coco-v8n", "--class-map", "coco", "--activate", "--json",
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        result = json.loads(run.stdout)
        wait_for(lambda: source()[1] == "coco-v8n", timeout_s=60, what="the worker to load coco-v8n")
        n_at_swap = len(seen)
        wait_for(lambda: len(seen) > n_at_swap + 3, what="frames on the imported model")
    finally:
        stop.set()
        thread.join()
        pool.stop()

    first = seen.index("coco-v8n")
    assert "coco-v8n" not in seen[:first] and set(seen[first:]) == {"coco-v8n"}, "no restart, no mixing"
    assert result["activated"] and result["imgsz_px"] == [64, 64] and result["labels"] == list(COCO80_LABELS)
    assert result["kinds"] == ["bicycle", "e_bike", "person"]
    detector = source()[0]
    assert detector.labels == list(COCO80_LABELS)
    assert kind_of(detector, "person") is ObjectKind.PERSON
    assert kind_of(detector, "motorcycle") is ObjectKind.E_BIKE
    assert kind_of(detector, "car") is None and kind_of(detector, "umbrella") is None
    assert kind_of(detector, "bicycle") is None, "the cameras file's class_map wins label by label"

    with registry_db() as s:
        mv = s.get(ModelVersion, "coco-v8n")
        assert mv.status == "active" and mv.sha256 == sha256_file(coco_models["detect"])
        assert registry.class_map_of(mv)["motorcycle"] == "e_bike"
        bootstrap = registry.ensure_bootstrap(s)
        assert bootstrap.status == "retired", "the import replaced the shipped model"
    card = json.loads((tmp_path / "models" / "coco-v8n" / "card.json").read_text())
    assert card["classes"] == list(COCO80_LABELS) and card["imgsz_px"] == [64, 64]
    assert card["artifacts"]["onnx"]["sha256"] == result["sha256"]
    assert card["source"]["sha256"] == result["sha256"] and card["source"]["class_map"] == "coco"
    assert card["class_map"]["motorcycle"] == "e_bike" and card["class_map"]["car"] is None

    # one command back: the shipped model, which the import registered first
    assert urbaneye("models", "rollback").returncode == 0
    listed = json.loads(urbaneye("models", "list", "--json").stdout)
    assert listed["active"] == {"default": bootstrap.version}


@pytest.mark.parametrize(("task", "what"), [("segment", "segmentation"), ("classify", "classification")])
def test_non_detection_models_are_refused_in_one_line(registry_db, coco_models, task, what) -> None:  # noqa: ANN001
    run = urbaneye("models", "import", str(coco_models[task]), "--name", task, "--class-map", "coco")
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("urbaneye models import: "), run.stderr
    assert f"a {what} model" in lines[0] and "detection" in lines[0]
    with registry_db() as s:
        assert s.get(ModelVersion, task) is None


def test_pt_import_checks_the_task_and_exports(registry_db, coco_models) -> None:  # noqa: ANN001
    run = urbaneye(
        "models",
        "import",
        str(coco_models["detect_pt"]),
        "--name",
        "coco-pt",
        "--class-map",
        "coco",
        "--json",
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["kinds"] == ["bicycle", "e_bike", "person"], "stdout is only the JSON"
    with registry_db() as s:
        mv = s.get(ModelVersion, "coco-pt")
        assert mv.status == "candidate" and mv.weights_uri.endswith("model.pt"), "kept for fine-tuning"
        seg_pt = coco_models["segment"].with_suffix(".pt")
        with pytest.raises(ModelImportError, match=r"is an ultralytics 'segment' model, not a detection"):
            import_model(s, seg_pt, name="seg-pt")


def test_class_map_must_fit_the_labels(registry_db, tiny_parent, coco_models, tmp_path) -> None:  # noqa: ANN001
    _, ours = tiny_parent  # our 8 labels
    run = urbaneye("models", "import", str(ours), "--name", "ours", "--class-map", "coco")
    assert run.returncode == 1 and len(run.stderr.strip().splitlines()) == 1
    assert "has 8 labels but the 'coco' class map is for the 80 COCO labels" in run.stderr

    with registry_db() as s:
        bad = tmp_path / "bad.yaml"
        bad.write_text("stall: vending_stall\n")
        with pytest.raises(
            ModelImportError, match=r"names label\(s\) \['stall'\] that the model does not have"
        ):
            import_model(s, ours, name="ours", class_map=str(bad))
        wrong_kind = tmp_path / "kind.yaml"
        wrong_kind.write_text("class_map:\n  garbage: rubbish\n")
        with pytest.raises(ModelImportError, match=r"unknown kind"):
            import_model(s, ours, name="ours", class_map=str(wrong_kind))
        nothing = tmp_path / "nothing.yaml"
        nothing.write_text("\n".join(f"'{label}': null" for label in COCO80_LABELS) + "\n")
        with pytest.raises(ModelImportError, match=r"none of the model's 80 labels .* becomes an UrbanEye"):
            import_model(s, coco_models["detect"], name="nothing", class_map=str(nothing))

        good = tmp_path / "good.yaml"
        good.write_text("garbage: trash_bin\nsmoke: null\n")
        result = import_model(s, ours, name="ours", class_map=str(good), camera_group="night")
        s.commit()
        assert result.class_map["garbage"] == "trash_bin" and result.class_map["smoke"] is None
        assert result.class_map["person"] == "person" and not result.activated
        assert s.get(ModelVersion, "ours").camera_group == "night"
        with pytest.raises(registry.RegistryError, match="already registered"):
            import_model(s, ours, name="ours")


def test_fresh_database_lists_the_bootstrap_as_active_default(registry_db, settings_env) -> None:  # noqa: ANN001
    # two CLIs on a fresh database at once: one registration, both see it
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "urbaneye.cli", "models", "list", "--json"],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
    sha = sha256_file(settings_env().model_path)
    for out, _ in outs:
        listed = json.loads(out)
        assert listed["active"] == {"default": f"bootstrap-{sha[:12]}"}
        (row,) = listed["models"]
        assert (row["status"], row["sha256"], row["classes"][0]) == ("active", sha, "person")
    with registry_db() as s:
        assert [mv.version for mv in registry.list_versions(s)] == [f"bootstrap-{sha[:12]}"]
        promotes = s.scalars(select(AuditLog.action).where(AuditLog.action == "promote")).all()
        assert len(promotes) == 1


def _fake_model(s, tmp_path: Path, version: str, gate: dict | None = None) -> ModelVersion:  # noqa: ANN001
    path = tmp_path / f"{version}.onnx"
    path.write_bytes(f"bytes of {version}".encode())
    return registry.register(s, onnx_path=path, version=version, gate=gate)


def test_failed_gate_needs_force_and_is_audited(registry_db, tmp_path) -> None:  # noqa: ANN001
    failed = GateDecision(promote=False, reason="kept as candidate: val mAP50 0.400 <= active 0.500")
    with registry_db() as s:
        _fake_model(s, tmp_path, "good")
        registry.promote(s, "good")
        _fake_model(s, tmp_path, "weak", gate=failed.to_json())
        s.commit()
        with pytest.raises(registry.GateRefused, match=r"failed its promotion gate \(kept as candidate"):
            registry.promote(s, "weak", actor="user:admin1")
    run = urbaneye("models", "promote", "weak")
    assert run.returncode == 1 and "--force" in run.stderr
    run = urbaneye("models", "promote", "weak", "--force")
    assert run.returncode == 0, run.stderr
    with registry_db() as s:
        assert registry.active_for_group(s, "default").version == "weak"
        assert s.get(ModelVersion, "weak").gate["promoted"]["forced"] is True
        row = s.scalars(
            select(AuditLog).where(AuditLog.action == "promote", AuditLog.entity_id == "weak")
        ).one()
        assert row.actor == "cli:admin" and row.detail["forced"] is True
        assert row.detail["gate_reason"].startswith("kept as candidate")
        # a passed gate or none at all needs no force
        _fake_model(s, tmp_path, "passed", gate=GateDecision(promote=True, reason="better").to_json())
        registry.promote(s, "passed")
        s.commit()


def test_report_counts_reviewer_verdicts_per_kind_and_camera(registry_db, tmp_path, fs_store) -> None:  # noqa: ANN001
    with registry_db() as s:
        mv = _fake_model(s, tmp_path, "city-v1")
        _fake_model(s, tmp_path, "other")
        alias = f"city-onnx-{mv.sha256[:12]}"  # the detector's own name while it ran as a fallback file
        cases = [
            ("cam-1", "bike_misparking", "confirmed", None, "city-v1"),
            ("cam-1", "bike_misparking", "closed", None, "city-v1"),
            ("cam-1", "bike_misparking", "rejected", "false_detection", "city-v1"),
            ("cam-1", "exposed_garbage", "rejected", "fixed_object", alias),
            ("cam-2", "bike_misparking", "queued", None, alias),
            ("cam-2", "bike_misparking", "pending_review", None, "city-v1"),
            ("cam-2", "bike_misparking", "rejected", "false_detection", "other"),  # another model's
        ]
        for i, (camera, kind, status, reason, model) in enumerate(cases):
            case = add_case(
                s, fs_store, camera_id=camera, kind=kind, status=status, reject_reason=reason, at=T0, seed=i
            )
            case.model_version = model
        s.commit()
        report = model_report(s, "city-v1").to_json()
    assert report["counted_as"] == sorted(["city-v1", alias])
    assert report["total"] == {
        "cases": 6,
        "pending": 1,
        "confirmed": 3,
        "rejected": 2,
        "reasons": {"false_detection": 1, "fixed_object": 1},
        "precision": 0.6,
    }
    bikes = report["kinds"]["bike_misparking"]
    assert (bikes["confirmed"], bikes["rejected"], bikes["precision"]) == (3, 1, 0.75)
    assert report["kinds"]["exposed_garbage"]["precision"] == 0.0
    cam2 = report["cameras"]["cam-2"]
    assert cam2["total"]["cases"] == 2 and cam2["kinds"]["bike_misparking"]["pending"] == 1
    assert cam2["total"]["precision"] == 1.0
    assert report["cameras"]["cam-1"]["kinds"]["bike_misparking"]["reasons"] == {"false_detection": 1}

    run = urbaneye("models", "report", "--name", "city-v1", "--json")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == report
    run = urbaneye("models", "report", "--name", "nope")
    assert run.returncode == 1 and "not in the registry" in run.stderr
