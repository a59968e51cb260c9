"""Real frames of the annotation queue in the dataset builder (datasets.real_frames): labelled frames and
negatives with their provenance, split with the case frames, scored apart as the ``real_frames`` split."""

from __future__ import annotations

import datetime as dt

import pytest

from datasets.builder import BuildOptions, DatasetError, build_dataset, datasets_store, materialize
from datasets.real_frames import write_real_frames_split
from models.data_yaml import split_images
from models.evaluate import evaluate_model, label_path, read_yolo_labels
from models.retrain import evaluate_real_frames
from tests.retrain.conftest import T0, add_case, jpeg
from urbaneye import annotations as queue
from urbaneye.db.annotations import SampleReason
from urbaneye.db.models import Camera
from vision.digest import sha256_hex

PROPOSAL = queue.Proposal("garbage", (20.0, 20.0, 60.0, 60.0), 0.37, "model")


def add_item(s, store, *, camera_id="cam-1", at=T0, seed=100, answer="labelled"):  # noqa: ANN001, ANN201
    """A sampled frame in the store and the queue, answered through the queue service."""
    data = jpeg(seed)
    sha = sha256_hex(data)
    key = queue.frame_key(camera_id, at, sha)
    store.put(key, data, "image/jpeg", {})
    new = queue.NewItem(
        camera_id, at, at.timestamp(), SampleReason.UNKNOWN_REGION, "16-20", "tiny-parent", key, sha, 160, 96,
        (PROPOSAL,),
    )  # fmt: skip
    item = queue.add_item(s, new)
    s.commit()
    now = at + dt.timedelta(hours=1)
    if answer == "labelled":
        boxes = [queue.Box("garbage", (18, 22, 64, 58)), queue.Box("person", (100, 10, 120, 80))]
        queue.submit_labels(s, item.id, "u1", boxes, now)
    elif answer == "negative":
        queue.mark_negative(s, item.id, "u1", now)
    elif answer == "skipped":
        queue.skip(s, item.id, "u1", now)
    return item


def _real(manifest):  # noqa: ANN001, ANN202
    return [it for it in manifest["items"] if it["source"] == "real_frame"]


def test_labelled_frames_and_negatives_join_the_dataset_with_provenance(db, fs_store, settings_env, tmp_path):  # noqa: ANN001
    with db() as s:
        add_case(s, fs_store, at=T0, seed=1)
        s.commit()
        labelled = add_item(s, fs_store, at=T0 + dt.timedelta(days=2), seed=101)
        negative = add_item(
            s, fs_store, camera_id="cam-2", at=T0 + dt.timedelta(days=3), seed=102, answer="negative"
        )
        add_item(s, fs_store, at=T0 + dt.timedelta(days=4), seed=103, answer="skipped")
        add_item(s, fs_store, at=T0 + dt.timedelta(days=5), seed=104, answer="pending")
        result = build_dataset(
            s, options=BuildOptions(synth_share=0.0, val_fraction=0.5), out_dir=tmp_path / "ds"
        )
        s.commit()
    real = {it["annotation_item"]: it for it in _real(result.manifest)}
    assert set(real) == {labelled.id, negative.id}  # skipped and pending frames are not training data
    it = real[labelled.id]
    assert it["labels"] == [
        {"label": "garbage", "xyxy": [18.0, 22.0, 64.0, 58.0], "source": "annotation"},
        {"label": "person", "xyxy": [100.0, 10.0, 120.0, 80.0], "source": "annotation"},
    ]
    assert (it["camera_id"], it["sampled_because"], it["model_version"], it["labelled_by"]) == (
        "cam-1", "unknown_region", "tiny-parent", "u1",
    )  # fmt: skip
    assert it["captured_at"] == (T0 + dt.timedelta(days=2)).isoformat()
    assert it["proposals"] == [PROPOSAL.to_json()] and it["image_sha256"] == labelled.sha256
    assert real[negative.id]["labels"] == [] and real[negative.id]["verdict"] == "annotation:negative"
    counts = result.counts["real_frames"]
    assert (
        sum(c["images"] for c in counts.values()) == 2 and sum(c["negatives"] for c in counts.values()) == 1
    )
    assert sum(c["boxes"] for c in counts.values()) == 2
    # the YOLO folder holds the frames and their boxes
    split = it["split"]
    image = tmp_path / "ds" / "images" / split / f"{labelled.sha256}.jpg"
    assert sha256_hex(image.read_bytes()) == labelled.sha256
    xyxy, cls = read_yolo_labels(label_path(image), 160, 96)
    assert sorted(cls.tolist()) == [0, 4] and xyxy.shape == (2, 4)  # person, garbage


def test_real_frames_alone_make_a_dataset_and_a_real_frames_split(db, fs_store, settings_env, tmp_path):  # noqa: ANN001
    with db() as s:
        for day in range(4):  # four scenes (days apart): some go to val
            add_item(s, fs_store, at=T0 + dt.timedelta(days=day), seed=200 + day)
        result = build_dataset(s, options=BuildOptions(synth_share=0.0, val_fraction=0.5))
        s.commit()
    manifest = result.manifest
    val = [it for it in _real(manifest) if it["split"] == "val"]
    assert len(_real(manifest)) == 4 and 1 <= len(val) <= 3
    data_yaml = materialize(manifest, tmp_path / "ds", datasets_store())
    assert write_real_frames_split(manifest, data_yaml) == len(val)
    images = split_images(data_yaml, "real_frames")
    assert sorted(p.stem for p in images) == sorted(it["image_sha256"] for it in val)
    assert all(p.is_file() for p in images)


def test_camera_group_selects_real_frames(db, fs_store, settings_env):  # noqa: ANN001
    with db() as s:
        s.add(Camera(id="cam-n", name="北", group="north", config={}))
        s.commit()
        north = add_item(s, fs_store, camera_id="cam-n", seed=300)
        add_item(s, fs_store, camera_id="cam-x", seed=301)  # only in a cameras file: group default
        result = build_dataset(s, options=BuildOptions(synth_share=0.0, camera_group="north"))
        s.commit()
    assert [it["annotation_item"] for it in _real(result.manifest)] == [north.id]


def test_a_changed_frame_names_the_item(db, fs_store, settings_env):  # noqa: ANN001
    with db() as s:
        item = add_item(s, fs_store, seed=400)
        (fs_store.root / item.key).write_bytes(jpeg(401))  # the bytes under the key changed
        with pytest.raises(DatasetError, match=f"annotation item {item.id}"):
            build_dataset(s, options=BuildOptions(synth_share=0.0))


def test_retraining_scores_the_real_frames_of_val_apart(db, fs_store, settings_env, tmp_path, tiny_parent):  # noqa: ANN001
    _, onnx = tiny_parent
    with db() as s:
        for day in range(4):  # each scene (a day) holds a labelled frame and a negative
            add_item(s, fs_store, at=T0 + dt.timedelta(days=day), seed=500 + day)
            at = T0 + dt.timedelta(days=day, minutes=10)
            add_item(s, fs_store, at=at, seed=600 + day, answer="negative")
        add_case(s, fs_store, at=T0 + dt.timedelta(days=9), seed=5)
        result = build_dataset(
            s, options=BuildOptions(synth_share=0.0, val_fraction=0.5), out_dir=tmp_path / "ds"
        )
        s.commit()
    val = [it for it in _real(result.manifest) if it["split"] == "val"]
    report = evaluate_real_frames(evaluate_model, onnx, onnx, result.manifest, result.data_yaml)
    assert report["images"] == len(val) and report["negatives"] == sum(1 for it in val if not it["labels"])
    assert val, "the split (stable hash of the scenes) puts some real frames in val"
    assert report["new"]["images"] == len(val)  # only the real frames, not the case frames of val
    garbage = sum(1 for it in val for lb in it["labels"] if lb["label"] == "garbage")
    assert garbage and report["new"]["per_class"]["garbage"]["instances"] == garbage
    assert report["new"] == report["parent"]  # the same model scored twice
