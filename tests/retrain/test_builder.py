"""Dataset builder: verdict -> labels, scene split without leaks, manifest reproducibility on S3."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import pytest

from datasets.builder import (
    BuildOptions,
    DatasetError,
    Verdict,
    assign_scenes,
    build_dataset,
    datasets_store,
    frame_labels,
    load_manifest,
    materialize,
    merge_frame_labels,
    split_scenes,
)
from datasets.labels import load_catalogue, review_cases
from tests.kinds import GOODS_DISPLAY
from tests.retrain.conftest import T0, add_case, jpeg
from urbaneye.db.models import Case, DatasetVersion
from vision.config import parse_cameras
from vision.kinds import Catalogue, kind_catalogue
from vision.types import OBJECT_KINDS, Detections

K = {str(k): i for i, k in enumerate(OBJECT_KINDS)}


def dets(*rows: tuple[str, tuple[float, float, float, float], float]) -> Detections:
    return Detections(
        xyxy=[r[1] for r in rows] or [[0, 0, 0, 0]][:0],
        confidence=[r[2] for r in rows],
        class_id=[K[r[0]] for r in rows],
    )


def case(kind="exposed_garbage", bbox=(20, 20, 60, 60), corrections=None, object_count=1) -> Case:
    return Case(
        id="c1",
        kind=kind,
        bbox_xyxy=list(bbox),
        frame_wh=[160, 96],
        corrections=corrections or [],
        object_count=object_count,
    )


POS, NEG = Verdict("positive", "confirmed"), Verdict("negative", "rejected:false_detection")
PERSON = ("person", (100.0, 10.0, 120.0, 80.0), 0.9)


def reviewed(c: Case, verdict: Verdict, catalogue: Catalogue | None = None):
    """``c`` read as the builder reads it (built-in kinds unless ``catalogue``), and what was skipped."""
    by_id, issues = review_cases([(c, verdict)], catalogue or load_catalogue(None))
    return by_id[c.id], issues


def labels(c, verdict, detections=None, wh=(160, 96), catalogue=None):
    return sorted(
        (lb.label, tuple(round(v) for v in lb.xyxy), lb.source)
        for lb in frame_labels(reviewed(c, verdict, catalogue)[0], detections, wh, 0.6)
    )


@pytest.mark.parametrize(
    ("name", "c", "verdict", "detections", "expected"),
    [
        (
            "confirmed box + confident pseudo-label",
            case(),
            POS,
            dets(PERSON, ("bicycle", (0, 0, 10, 10), 0.3)),
            [("garbage", (20, 20, 60, 60), "case"), ("person", (100, 10, 120, 80), "pseudo")],
        ),
        (
            "reviewed box replaces the model's own box",
            case(),
            POS,
            dets(("garbage", (22, 22, 61, 61), 0.95)),
            [("garbage", (20, 20, 60, 60), "case")],
        ),
        (
            "hard negative: false box and its pseudo-label removed",
            case(),
            NEG,
            dets(("garbage", (22, 22, 61, 61), 0.95), PERSON),
            [("person", (100, 10, 120, 80), "pseudo")],
        ),
        (
            "vending maps to stall",
            case("street_vending"),
            POS,
            None,
            [("vending_stall", (20, 20, 60, 60), "case")],
        ),
        (
            "bike kind from the model",
            case("bike_misparking"),
            POS,
            dets(("e_bike", (21, 20, 60, 59), 0.4)),
            [("e_bike", (20, 20, 60, 60), "case")],
        ),
        (
            "bike group box: bikes labelled one by one",
            case("bike_misparking", (0, 0, 100, 90), object_count=2),
            POS,
            dets(("bicycle", (5, 5, 40, 80), 0.8), ("bicycle", (50, 5, 90, 80), 0.8)),
            [("bicycle", (5, 5, 40, 80), "pseudo"), ("bicycle", (50, 5, 90, 80), "pseudo")],
        ),
        (
            "adjust correction moves the box",
            case(corrections=[{"action": "adjust", "xyxy": [10, 10, 70, 70]}]),
            POS,
            None,
            [("garbage", (10, 10, 70, 70), "correction")],
        ),
        (
            "relabel correction",
            case(corrections=[{"action": "relabel", "label": "trash_bin"}]),
            POS,
            None,
            [("trash_bin", (20, 20, 60, 60), "correction")],
        ),
        (
            "add and remove corrections",
            case(
                corrections=[
                    {"action": "add", "xyxy": [70, 10, 90, 30], "label": "smoke"},
                    {"action": "remove", "xyxy": [100, 10, 120, 80]},
                ]
            ),
            POS,
            dets(PERSON),
            [("garbage", (20, 20, 60, 60), "case"), ("smoke", (70, 10, 90, 30), "correction")],
        ),
        (
            "boxes scale to the stored image size",
            case(),
            POS,
            None,
            [("garbage", (40, 40, 120, 120), "case")],
        ),
    ],
)
def test_frame_labels(name, c, verdict, detections, expected):
    wh = (320, 192) if name.startswith("boxes scale") else (160, 96)
    assert labels(c, verdict, detections, wh) == expected, name


GARBAGE_ELSEWHERE = ("garbage", (110.0, 60.0, 150.0, 90.0), 0.8)


def case_at(bbox, kind="exposed_garbage", corrections=None) -> Case:
    return case(kind=kind, bbox=bbox, corrections=corrections)


@pytest.mark.parametrize(
    ("name", "cases", "detections", "expected"),
    [
        (
            "a confirmed pile and a false alarm on another spot of the same frame",
            [(case_at((20, 20, 60, 60)), POS), (case_at((110, 60, 150, 90)), NEG)],
            dets(PERSON, GARBAGE_ELSEWHERE),
            [("garbage", (20, 20, 60, 60), "case"), ("person", (100, 10, 120, 80), "pseudo")],
        ),
        (
            "two cases on the same pile (e.g. re-opened) label it once",
            [(case_at((20, 20, 60, 60)), POS), (case_at((20, 20, 60, 61)), POS)],
            None,
            [("garbage", (20, 20, 60, 60), "case")],
        ),
        (
            "two piles, two cases: both labelled, the pseudo-label of the second replaced by its case",
            [(case_at((20, 20, 60, 60)), POS), (case_at((112, 60, 150, 90)), POS)],
            dets(GARBAGE_ELSEWHERE),
            [("garbage", (20, 20, 60, 60), "case"), ("garbage", (112, 60, 150, 90), "case")],
        ),
        (
            "a reviewer's 'remove' on one case removes the pseudo-label for the whole frame",
            [
                (case_at((20, 20, 60, 60), corrections=[{"action": "remove", "xyxy": PERSON[1]}]), POS),
                (case_at((20, 20, 60, 60), kind="street_vending"), NEG),
            ],
            dets(PERSON),
            [("garbage", (20, 20, 60, 60), "case")],
        ),
    ],
)
def test_cases_sharing_a_frame_merge(name, cases, detections, expected):
    per_case = [frame_labels(reviewed(c, v)[0], detections, (160, 96), 0.6) for c, v in cases]
    got = sorted(
        (lb.label, tuple(round(v) for v in lb.xyxy), lb.source) for lb in merge_frame_labels(per_case)
    )
    assert got == expected, name


def test_one_item_per_image_with_every_verdict_on_it(db, fs_store, settings_env):
    image = jpeg(7)
    with db() as s:
        # two cases on the same camera frame, each kept at first sighting and at the dwell crossing
        add_case(s, fs_store, bbox=(20, 20, 60, 60), frames=2, image=image)
        add_case(
            s,
            fs_store,
            bbox=(100, 50, 150, 90),
            status="rejected",
            reject_reason="false_detection",
            frames=2,
            image=image,
        )
        add_case(s, fs_store, camera_id="cam-2", at=T0 + dt.timedelta(days=2), seed=3)
        s.commit()
        result = build_dataset(s, options=BuildOptions(synth_share=0, val_fraction=0.3))
    items = {it["image_sha256"]: it for it in result.manifest["items"]}
    assert len(result.manifest["items"]) == len(items) == 2
    shared = items[hashlib.sha256(image).hexdigest()]
    assert [(lb["label"], lb["xyxy"]) for lb in shared["labels"]] == [("garbage", [20, 20, 60, 60])]
    verdicts = [shared["verdict"]] + [a["verdict"] for a in shared["also_cases"]]
    assert sorted(verdicts) == ["confirmed", "rejected:false_detection"]
    assert result.counts["cases_used"] == 3
    assert result.counts["train"]["negatives"] + result.counts["val"]["negatives"] == 1


@pytest.mark.parametrize(
    ("name", "corrections", "expected"),
    [
        (
            "the review UI's add (api.schemas.cases.CorrectionIn: bbox_xyxy, seq)",
            [{"action": "add", "bbox_xyxy": [70, 10, 90, 30], "label": "smoke", "seq": 2}],
            [
                ("garbage", (20, 20, 60, 60), "case"),
                ("person", (100, 10, 120, 80), "pseudo"),
                ("smoke", (70, 10, 90, 30), "correction"),
            ],
        ),
        (
            "the review UI's move is an adjust of the case's box",
            [{"action": "move", "bbox_xyxy": [10, 10, 70, 70], "seq": 2}],
            [("garbage", (10, 10, 70, 70), "correction"), ("person", (100, 10, 120, 80), "pseudo")],
        ),
        (
            "the review UI's relabel of the case's box, and remove of a pseudo-label",
            [
                {"action": "relabel", "bbox_xyxy": [20, 20, 60, 60], "label": "trash_bin", "seq": 2},
                {"action": "remove", "bbox_xyxy": list(PERSON[1]), "seq": 2},
            ],
            [("trash_bin", (20, 20, 60, 60), "correction")],
        ),
        (
            "an add naming only the violation kind labels the kind's object",
            [{"action": "add", "bbox_xyxy": [70, 10, 90, 30], "kind": "street_vending", "seq": 2}],
            [
                ("garbage", (20, 20, 60, 60), "case"),
                ("person", (100, 10, 120, 80), "pseudo"),
                ("vending_stall", (70, 10, 90, 30), "correction"),
            ],
        ),
    ],
)
def test_corrections_as_the_review_api_stores_them(name, corrections, expected):
    assert labels(case(corrections=corrections), POS, dets(PERSON)) == expected, name


def test_a_bad_correction_is_skipped_and_named_the_others_apply():
    c = case(
        corrections=[
            {"action": "add", "bbox_xyxy": [70, 10, 90, 30], "label": "smoke"},
            {"action": "add", "label": "smoke"},  # no box
            {"action": "rotate", "bbox_xyxy": [0, 0, 5, 5]},  # no such action
            {"action": "add", "bbox_xyxy": [9, 9, 1, 1], "label": "smoke"},  # corners swapped
            {"action": "add", "bbox_xyxy": [0, 0, 9, 9], "label": "unicorn"},
            {"action": "move", "bbox_xyxy": [10, 10, 70, 70]},
        ]
    )
    rc, issues = reviewed(c, POS)
    got = sorted(
        (lb.label, tuple(round(v) for v in lb.xyxy)) for lb in frame_labels(rc, None, (160, 96), 0.6)
    )
    assert got == [("garbage", (10, 10, 70, 70)), ("smoke", (70, 10, 90, 30))]
    assert sorted(line.split(":")[0] for line in issues.skipped_corrections) == [
        "case c1 correction #2 (add)",
        "case c1 correction #3 (rotate)",
        "case c1 correction #4 (add)",
        "case c1 correction #5 (add)",
    ]
    why = {line.split(" ")[3]: line for line in issues.skipped_corrections}  # "#n" -> the line
    assert "needs bbox_xyxy" in why["#2"]
    assert "action" in why["#3"] and "x1 < x2" in why["#4"] and "'unicorn'" in why["#5"]


def test_a_correction_drawn_on_one_evidence_frame_labels_that_frame_only():
    c = case(
        corrections=[
            {"action": "add", "bbox_xyxy": [70, 10, 90, 30], "label": "smoke", "seq": 2},  # seen on frame 2
            {"action": "remove", "bbox_xyxy": [100, 10, 120, 80], "seq": 1},  # a false person on frame 1
            {"action": "move", "bbox_xyxy": [10, 10, 70, 70], "seq": 2},  # the case's box: every frame
        ]
    )
    rc, issues = reviewed(c, POS)
    assert issues.skipped_corrections == []

    def on(seqs):  # noqa: ANN001, ANN202
        return sorted(
            (lb.label, tuple(round(v) for v in lb.xyxy))
            for lb in frame_labels(rc, dets(PERSON), (160, 96), 0.6, seqs)
        )

    assert on(frozenset({1})) == [("garbage", (10, 10, 70, 70))]
    assert on(frozenset({2})) == [
        ("garbage", (10, 10, 70, 70)),
        ("person", (100, 10, 120, 80)),
        ("smoke", (70, 10, 90, 30)),
    ]
    # one image kept as both frames takes both frames' corrections; no frame given: all of them
    assert on(frozenset({1, 2})) == on(None) == [("garbage", (10, 10, 70, 70)), ("smoke", (70, 10, 90, 30))]


CONFIGURED = kind_catalogue(
    parse_cameras(
        {
            "violations": [
                GOODS_DISPLAY,
                {
                    "id": "waste_or_bin",
                    "name_zh": "垃圾或垃圾桶",
                    "gbt_code": "0102",
                    "template": "stationary_object",
                    "classes": ["trash_bin", "garbage"],
                    "zone_kinds": ["monitored"],
                    "dwell_s": 60,
                },
                {
                    "id": "bike_heap",
                    "name_zh": "共享单车堆放",
                    "gbt_code": "0506",
                    "template": "cluster",
                    "classes": ["bicycle"],
                    "min_count": 3,
                    "zone_kinds": ["no_parking"],
                    "dwell_s": 60,
                },
            ]
        }
    )
)


@pytest.mark.parametrize(
    ("name", "c", "verdict", "detections", "expected"),
    [
        (
            "a configured kind's box is its object class",
            case("goods_display"),
            POS,
            None,
            [("vending_stall", (20, 20, 60, 60), "case")],
        ),
        (
            "a false configured-kind box removes its class's pseudo-label, not the bikes'",
            case("goods_display"),
            NEG,
            dets(("vending_stall", (21, 21, 60, 60), 0.9), ("bicycle", (20, 20, 60, 61), 0.9)),
            [("bicycle", (20, 20, 60, 61), "pseudo")],
        ),
        (
            "several classes: the one the model saw on the box",
            case("waste_or_bin"),
            POS,
            dets(("garbage", (21, 20, 60, 59), 0.4)),
            [("garbage", (20, 20, 60, 60), "case")],
        ),
        (
            "several classes, nothing seen there: the first",
            case("waste_or_bin"),
            POS,
            None,
            [("trash_bin", (20, 20, 60, 60), "case")],
        ),
        (
            "a cluster kind's box around several objects: each labelled by the pseudo-labeller",
            case("bike_heap", (0, 0, 100, 90), object_count=3),
            POS,
            dets(("bicycle", (5, 5, 40, 80), 0.8), ("bicycle", (50, 5, 90, 80), 0.8)),
            [("bicycle", (5, 5, 40, 80), "pseudo"), ("bicycle", (50, 5, 90, 80), "pseudo")],
        ),
    ],
)
def test_configured_kinds(name, c, verdict, detections, expected):
    assert labels(c, verdict, detections, catalogue=CONFIGURED) == expected, name


def test_a_kind_unknown_to_the_builder_gets_no_box_and_is_counted():
    rc, issues = reviewed(case("goods_display"), POS)  # built-ins only: no cameras file
    assert [lb.label for lb in frame_labels(rc, dets(PERSON), (160, 96), 0.6)] == ["person"]
    assert issues.unknown_kinds == {"goods_display": ["c1"]}


def test_a_classification_names_the_object_of_a_kind_only_cases_know():
    # urbaneye.cases.classify writes an adjust with xyxy, the kind and its object class
    classified = {
        "action": "adjust",
        "xyxy": [10, 10, 70, 70],
        "label": "vending_stall",
        "kind": "goods_display",
    }
    other = Case(
        id="c2", kind="goods_display", bbox_xyxy=[20, 20, 60, 60], frame_wh=[160, 96], corrections=[]
    )
    by_id, issues = review_cases(
        [(case("goods_display", corrections=[classified]), POS), (other, POS)], load_catalogue(None)
    )
    assert [lb.label for lb in frame_labels(by_id["c1"], None, (160, 96), 0.6)] == ["vending_stall"]
    assert [lb.label for lb in frame_labels(by_id["c2"], None, (160, 96), 0.6)] == ["vending_stall"]
    assert issues.unknown_kinds == {}


def test_scenes_and_split():
    from datasets.builder import FrameRef

    def f(cid, cam, minutes):
        return FrameRef(cid, cam, T0 + dt.timedelta(minutes=minutes), "k", "s", 1)

    frames = [
        f("a", "cam-1", 0),
        f("b", "cam-1", 30),
        f("c", "cam-1", 200),
        f("d", "cam-2", 0),
        f("e", "cam-1", 500),
    ]
    scenes = assign_scenes(frames, scene_gap_s=3600, max_scene_s=6 * 3600)
    assert scenes["a"] == scenes["b"] != scenes["c"]
    assert len({scenes[x] for x in "abcde"}) == 4
    val = split_scenes({"s1": 5, "s2": 5, "s3": 5, "s4": 5}, 0.25)
    assert len(val) == 1
    assert split_scenes({"s1": 5}, 0.5) == set()  # one scene stays in train
    assert split_scenes({"s1": 5, "s2": 1}, 0.99) in ({"s1"}, {"s2"})


def test_build_from_reviewed_cases_is_reproducible_on_s3(db, s3_settings, tmp_path):
    from urbaneye.storage import get_store

    evidence = get_store(s3_settings)
    with db() as s:
        # 4 cameras x 2 sessions far apart in time -> 8 scenes; plus cases that must be skipped
        n = 0
        for cam in ("cam-1", "cam-2", "cam-3", "cam-4"):
            for day in (0, 3):
                add_case(s, evidence, camera_id=cam, at=T0 + dt.timedelta(days=day), seed=n, frames=2)
                n += 1
        add_case(
            s,
            evidence,
            camera_id="cam-1",
            status="rejected",
            reject_reason="false_detection",
            at=T0 + dt.timedelta(days=6),
            seed=90,
        )
        add_case(
            s, evidence, status="rejected", reject_reason="duplicate", at=T0 + dt.timedelta(days=9), seed=91
        )
        add_case(s, evidence, status="pending_review", at=T0 + dt.timedelta(days=9), seed=92)
        s.commit()
        result = build_dataset(
            s,
            options=BuildOptions(synth_share=0, val_fraction=0.3),
            settings=s3_settings,
            out_dir=tmp_path / "ds",
        )
        s.commit()
    m = result.manifest
    assert result.counts["cases_used"] == 9
    assert result.counts["cases_skipped"] == {"rejected:duplicate": 1}
    assert (
        result.counts["train"]["images"] + result.counts["val"]["images"] + result.counts["buffer_dropped"]
        == 17
    )
    assert result.counts["val"]["images"] > 0 and result.counts["train"]["images"] > 0
    # no scene in both splits, and no train frame within the gap of a val frame of its camera
    splits = {}
    for it in m["items"]:
        splits.setdefault(it["scene"], set()).add(it["split"])
    assert all(len(v) == 1 for v in splits.values())
    val_at = [
        (it["camera_id"], dt.datetime.fromisoformat(it["captured_at"]))
        for it in m["items"]
        if it["split"] == "val"
    ]
    for it in m["items"]:
        if it["split"] == "train":
            t = dt.datetime.fromisoformat(it["captured_at"])
            assert all(cam != it["camera_id"] or abs((t - tv).total_seconds()) > 3600 for cam, tv in val_at)
    neg = [it for it in m["items"] if it["verdict"] == "rejected:false_detection"]
    assert len(neg) == 1 and neg[0]["labels"] == []
    assert all(it["case_id"] and it["image_sha256"] for it in m["items"])

    # stored in the datasets bucket and registered; a fresh materialize from the manifest is identical
    assert result.manifest_uri == f"s3://{s3_settings.s3_datasets_bucket}/manifests/{result.version}.json"
    store = datasets_store(s3_settings)
    with db() as s:
        row = s.get(DatasetVersion, result.version)
        assert row.sha256 == result.sha256
        again = load_manifest(s, result.version, store)
    assert again == json.loads(json.dumps(m))
    rebuilt = materialize(again, tmp_path / "again", store)

    def tree(root):
        return {
            str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "data.yaml"
        }

    assert tree(tmp_path / "ds") == tree(rebuilt.parent)
    label = next((tmp_path / "ds" / "labels" / "train").glob("*.txt")).read_text().split()
    assert label[0] == str(K["garbage"]) and len(label) == 5


def test_no_reviewed_cases_names_the_fix(db, fs_store):
    with db() as s, pytest.raises(DatasetError, match="review some cases first"):
        build_dataset(s, options=BuildOptions(synth_share=0))


def test_build_uses_the_review_api_corrections_and_the_cameras_file_kinds(db, fs_store, tmp_path):
    cameras = tmp_path / "cameras.yaml"
    cameras.write_text(
        "violations:\n"
        "  - {id: goods_display, name_zh: 出店陈列, gbt_code: '0504', template: stationary_object,\n"
        "     classes: [vending_stall], zone_kinds: [monitored], dwell_s: 40}\n"
        "cameras: []\n"
    )
    ui_add = {"action": "add", "bbox_xyxy": [70, 10, 90, 30], "label": "smoke", "seq": 2}
    with db() as s:
        fixed = add_case(
            s, fs_store, frames=2, corrections=[ui_add, {"action": "add", "label": "smoke", "seq": 2}]
        )
        goods = add_case(s, fs_store, kind="goods_display", camera_id="cam-2", seed=5)
        unknown = add_case(s, fs_store, kind="material_piling", camera_id="cam-3", seed=7)
        s.commit()
        result = build_dataset(s, options=BuildOptions(synth_share=0, val_fraction=0, cameras_file=cameras))
    by_frame = {
        (it["case_id"], it["evidence_seq"]): [(lb["label"], lb["xyxy"]) for lb in it["labels"]]
        for it in result.manifest["items"]
    }
    by_case = {case_id: labels for (case_id, _), labels in by_frame.items()}
    # the UI's add was drawn on frame 2: the first sighting (frame 1) does not get the smoke
    assert by_frame[fixed.id, 1] == [("garbage", [20, 20, 60, 60])]
    assert by_frame[fixed.id, 2] == [("garbage", [20, 20, 60, 60]), ("smoke", [70, 10, 90, 30])]
    assert by_case[goods.id] == [("vending_stall", [20, 20, 60, 60])]
    assert by_case[unknown.id] == []
    issues = result.counts["label_issues"]
    assert [line.split(":")[0] for line in issues["skipped_corrections"]] == [
        f"case {fixed.id} correction #2 (add)"
    ]
    assert issues["unknown_kinds"] == {"material_piling": [unknown.id]}


def test_a_broken_cameras_file_names_the_fix(db, fs_store, tmp_path):
    broken = tmp_path / "cameras.yaml"
    broken.write_text("violations: [{id: x}]\n")
    with db() as s:
        add_case(s, fs_store)
        s.commit()
        with pytest.raises(DatasetError, match=f"cameras file {broken} cannot be read"):
            build_dataset(s, options=BuildOptions(synth_share=0, cameras_file=broken))
