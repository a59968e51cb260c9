"""``evaluate_model`` through vision.detector, against a constant-output ONNX whose answers we know."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import yaml
from onnx import TensorProto, helper

from models.evaluate import evaluate_model, label_path, read_yolo_labels, record_metrics
from urbaneye.cli import main as urbaneye_main
from urbaneye.model_card import ArtifactInfo, ModelCard
from vision.types import OBJECT_KINDS

W, H = 128, 96
NAMES = [str(k) for k in OBJECT_KINDS]
#: The objects in every image of the fixed dataset: (class, x1, y1, x2, y2) px.
OBJECTS = [(0, 10, 20, 30, 80), (6, 60, 40, 110, 90)]


def write_fixed_dataset(root: Path, n_images: int = 3) -> Path:
    """Identical images with the same two objects each, so a constant model can be exactly right."""
    import cv2

    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
    img = np.full((H, W, 3), 90, np.uint8)
    lines = [
        f"{c} {(x1 + x2) / 2 / W:.6f} {(y1 + y2) / 2 / H:.6f} {(x2 - x1) / W:.6f} {(y2 - y1) / H:.6f}"
        for c, x1, y1, x2, y2 in OBJECTS
    ]
    for i in range(n_images):
        split = "val" if i else "train"
        cv2.imwrite(str(root / "images" / split / f"{i}.png"), img)
        (root / "labels" / split / f"{i}.txt").write_text("\n".join(lines) + "\n")
    data = {"path": str(root), "train": "images/train", "val": "images/val", "names": dict(enumerate(NAMES))}
    (root / "data.yaml").write_text(yaml.safe_dump(data))
    return root / "data.yaml"


def write_constant_model(
    path: Path, boxes: list[tuple[int, float, float, float, float]], score: float
) -> Path:
    """A YOLO-shaped ONNX (1, 3, H, W) -> (1, 4+nc, N) that outputs ``boxes`` (class, x1, y1, x2, y2)
    at ``score`` for any input; the input only enters through a zero-weighted mean so it stays used."""
    nc = len(NAMES)
    out = np.zeros((1, 4 + nc, len(boxes)), np.float32)
    for j, (c, x1, y1, x2, y2) in enumerate(boxes):
        out[0, :4, j] = [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1]
        out[0, 4 + c, j] = score
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], keepdims=0),
        helper.make_node(
            "Constant", [], ["zero"], value=helper.make_tensor("z", TensorProto.FLOAT, [], [0.0])
        ),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
        helper.make_node("Constant", [], ["boxes"], value=onnx.numpy_helper.from_array(out, "b")),
        helper.make_node("Add", ["boxes", "nothing"], ["output0"]),
    ]
    graph = helper.make_graph(
        nodes,
        "constant",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, H, W])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 4 + nc, len(boxes)])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in {"names": str(dict(enumerate(NAMES))), "imgsz": str([H, W]), "task": "detect"}.items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, value
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture
def fixed_dataset(tmp_path: Path) -> Path:
    return write_fixed_dataset(tmp_path / "ds")


def test_perfect_model_scores_one_and_absent_classes_are_null(fixed_dataset: Path, tmp_path: Path) -> None:
    model = write_constant_model(tmp_path / "perfect.onnx", OBJECTS, score=0.9)
    report = evaluate_model(model, fixed_dataset, "val", plots_dir=tmp_path / "plots")
    assert report["images"] == 2
    assert report["map50"] == pytest.approx(1.0)
    assert report["map50_95"] == pytest.approx(1.0)
    assert report["per_class"]["person"] == {
        "ap50": 1.0,
        "ap50_95": 1.0,
        "precision": 1.0,
        "recall": 1.0,
        "f1": 1.0,
        "instances": 2,
        "best_f1_conf": pytest.approx(0.9),
    }
    assert report["per_class"]["grill"]["ap50"] == pytest.approx(1.0)
    assert report["per_class"]["bicycle"]["ap50"] is None  # no ground truth of that class
    for name in ("pr_curve.png", "confusion_matrix.png"):
        assert (tmp_path / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    full = json.loads((tmp_path / "plots" / "metrics.json").read_text())
    assert full["full"]["confusion"]["matrix"][0][0] == 2  # both persons found as persons


def test_split_all_counts_every_image(fixed_dataset: Path, tmp_path: Path) -> None:
    model = write_constant_model(tmp_path / "perfect.onnx", OBJECTS, score=0.9)
    assert evaluate_model(model, fixed_dataset, "all")["images"] == 3


@pytest.mark.parametrize(
    ("boxes", "score", "map50", "person_recall"),
    [
        # boxes shifted by their own width: IoU 0 -> nothing matches
        ([(0, 30, 20, 50, 80), (6, 10, 0, 60, 40)], 0.9, 0.0, 0.0),
        # right boxes, wrong classes (person <-> grill)
        ([(6, 10, 20, 30, 80), (0, 60, 40, 110, 90)], 0.9, 0.0, 0.0),
        # right boxes below the operating threshold: AP counts them, precision/recall at 0.35 do not
        (OBJECTS, 0.2, 1.0, 0.0),
    ],
)
def test_wrong_or_weak_predictions(
    fixed_dataset: Path, tmp_path: Path, boxes: list, score: float, map50: float, person_recall: float
) -> None:
    model = write_constant_model(tmp_path / "m.onnx", boxes, score=score)
    report = evaluate_model(model, fixed_dataset, "val")
    assert report["map50"] == pytest.approx(map50)
    assert report["per_class"]["person"]["recall"] == pytest.approx(person_recall)


def test_eval_cli_prints_one_json_object(
    fixed_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "models").mkdir()
    model = write_constant_model(tmp_path / "models" / "perfect.onnx", OBJECTS, score=0.9)
    monkeypatch.chdir(tmp_path)
    rc = urbaneye_main(["eval", "--model", str(model), "--data", str(fixed_dataset), "--json"])
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) >= {"map50", "map50_95", "per_class"}
    assert set(report["per_class"]) == set(NAMES)
    assert set(report["per_class"]["person"]) >= {"ap50", "precision", "recall"}
    # default plots folder: a run folder under the working directory, nothing written beside the model
    assert (tmp_path / "runs" / "eval" / "perfect-val" / "pr_curve.png").is_file()
    assert sorted(p.name for p in model.parent.iterdir()) == ["perfect.onnx"]


def test_record_metrics_refuses_another_model(fixed_dataset: Path, tmp_path: Path) -> None:
    model = write_constant_model(tmp_path / "perfect.onnx", OBJECTS, score=0.9)
    other = write_constant_model(tmp_path / "other.onnx", OBJECTS, score=0.8)
    card = ModelCard(
        name="t", classes=NAMES, imgsz_px=[H, W], architecture="x", dataset={}, recipe={}, training={}
    )
    card.artifacts["onnx"] = ArtifactInfo.of(model, tmp_path)
    record_metrics(
        card, "holdout", evaluate_model(model, fixed_dataset, "val"), data_yaml=fixed_dataset, split="val"
    )
    assert card.metrics["holdout"]["map50"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="sha256 differs"):
        record_metrics(
            card, "x", evaluate_model(other, fixed_dataset, "val"), data_yaml=fixed_dataset, split="val"
        )


def test_dataset_with_unknown_class_names_is_refused(tmp_path: Path) -> None:
    data_yaml = write_fixed_dataset(tmp_path / "ds")
    data = yaml.safe_load(data_yaml.read_text())
    data["names"][0] = "pedestrian"
    data_yaml.write_text(yaml.safe_dump(data))
    model = write_constant_model(tmp_path / "m.onnx", OBJECTS, score=0.9)
    with pytest.raises(ValueError, match="'pedestrian'.*not UrbanEye object kinds"):
        evaluate_model(model, data_yaml, "val")


@pytest.mark.parametrize(
    ("image", "label"),
    [
        ("/d/images/val/a.jpg", "/d/labels/val/a.txt"),
        ("/images/x/images/train/b.png", "/images/x/labels/train/b.txt"),  # the last 'images' is the one
        ("/d/pics/c.jpg", "/d/pics/c.txt"),
    ],
)
def test_label_path(image: str, label: str) -> None:
    assert label_path(Path(image)) == Path(label)


def test_read_yolo_labels(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("3 0.5 0.5 0.25 0.5\n\n")
    xyxy, cls = read_yolo_labels(path, 200, 100)
    np.testing.assert_allclose(xyxy, [[75, 25, 125, 75]])
    assert cls.tolist() == [3]
    assert read_yolo_labels(tmp_path / "missing.txt", 200, 100)[1].shape == (0,)
    path.write_text("3 0.5 0.5\n")
    with pytest.raises(ValueError, match="class cx cy w h"):
        read_yolo_labels(path, 200, 100)
