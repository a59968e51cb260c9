"""Build a versioned YOLO dataset from reviewer verdicts and labelled real frames, plus synthetic images.

What becomes a label (see docs/retraining.md for the reasoning):

- confirmed cases (and every later hotline status): the clean evidence frames, with the case's box as a
  positive of the object kind the violation implies (vending -> ``vending_stall``, garbage -> ``garbage``,
  barbecue -> ``grill``, bikes -> ``bicycle``/``e_bike`` as the model saw it).
- cases rejected as ``false_detection``: hard negatives. The frame is kept, the false box is *not*
  labelled, and any pseudo-label of the same kind over it is removed so the error cannot sneak back in.
- cases rejected as ``permitted_vending``: the object was real (a licensed stall), only the rule said no
  violation, so the box is a positive. ``duplicate``, ``insufficient_evidence`` and ``other`` are skipped.
- real frames labelled in full in the annotation queue, with their negatives (``datasets.real_frames``).
- configured kinds (cameras file ``violations:``) label their object class; unknown kinds no box.
- reviewer corrections (``Case.corrections``, see ``datasets.labels.StoredCorrection``) are applied on top, in
  order; an unusable one is skipped and named in ``counts.label_issues``.
- A case knows only its violation box; the other objects in the frame (people, bins, bikes, ...) are
  pseudo-labelled by the active model at high confidence (``pseudo_conf``, default 0.6). Without them the
  fine-tune would learn that unlabelled people are background.

Split: a *scene* is one camera's run of frames with no gap longer than ``scene_gap_s`` (capped at
``max_scene_s``); whole scenes go to train or val by a stable hash, and any train frame closer than
``scene_gap_s`` to a val frame of the same camera is dropped, so no scene leaks from train to val.
Synthetic images only go to train (the fixed regression set measures synthetic performance).

Storage: images are content-addressed (``images/<sha256>.jpg``) in the datasets bucket (or
``data_dir/datasets`` on the embedded file store) and the manifest (``manifests/<version>.json``) lists
every image's hash, source case id, camera, time, split and labels (xyxy pixels), so ``materialize``
rebuilds the identical YOLO folder anywhere.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from datasets import real_frames
from datasets.labels import (
    CLASSES,
    DatasetError,
    Label,
    Verdict,
    frame_labels,
    load_catalogue,
    merge_frame_labels,
    review_cases,
    verdict_of,
)
from datasets.synth import generate_images
from urbaneye.db.models import Camera, Case, DatasetVersion, utcnow
from urbaneye.settings import Settings, get_settings
from urbaneye.storage import (
    EvidenceIntegrityError,
    EvidenceNotFound,
    EvidenceStore,
    FsEvidenceStore,
    get_store,
    read_evidence,
)
from vision.digest import sha256_hex
from vision.types import Detections

log = logging.getLogger(__name__)

MANIFEST_FORMAT = "urbaneye-dataset/1"

#: Default synthetic fraction of the train split. The synthetic images are labelled in full, every class
#: in every style the parent was trained on, while a case frame has its reviewed boxes plus whatever the
#: parent pseudo-labelled at high confidence; mixing them half and half keeps a fine-tune rehearsing what
#: the parent knew (the fixed regression set is synthetic too) instead of learning that objects the parent
#: missed on the new frames are background.
SYNTH_SHARE = 0.5


class Detector(Protocol):
    """What the builder needs of a pseudo-labeller (``vision.detector.OnnxDetector`` fits)."""

    version: str

    def detect(self, frame_bgr: np.ndarray) -> Detections: ...


# ------------------------------------------------------------------------------------------------ stores


def datasets_store(settings: Settings | None = None) -> EvidenceStore:
    """Where datasets live: the ``s3_datasets_bucket`` on S3, else ``data_dir/datasets``."""
    settings = settings or get_settings()
    if settings.evidence_backend == "s3":
        return get_store(settings, bucket=settings.s3_datasets_bucket)
    store = FsEvidenceStore(Path(settings.data_dir) / "datasets", settings.secret_key)
    store.ensure_ready()
    return store


def _manifest_uri(settings: Settings, key: str) -> str:
    if settings.evidence_backend == "s3":
        return f"s3://{settings.s3_datasets_bucket}/{key}"
    return str((Path(settings.data_dir) / "datasets" / key).resolve())


# ------------------------------------------------------------------------------------------------- split


@dataclass(frozen=True)
class FrameRef:
    """One clean evidence frame to include (before the split)."""

    case_id: str
    camera_id: str
    at: dt.datetime
    key: str
    sha256: str
    seq: int


def assign_scenes(frames: Sequence[FrameRef], scene_gap_s: float, max_scene_s: float) -> dict[str, str]:
    """``{case_id: scene_id}``: one camera's cases without a gap > ``scene_gap_s`` share a scene.

    All frames of a case share its scene (a case's first frame decides). A scene is cut after
    ``max_scene_s`` so a camera that is never quiet still yields several scenes.
    """
    first: dict[str, FrameRef] = {}
    for f in sorted(frames, key=lambda f: (f.at, f.seq)):
        first.setdefault(f.case_id, f)
    by_camera: dict[str, list[FrameRef]] = {}
    for f in first.values():
        by_camera.setdefault(f.camera_id, []).append(f)
    scenes: dict[str, str] = {}
    for camera_id, items in by_camera.items():
        items.sort(key=lambda f: (f.at, f.case_id))
        start = prev = None
        n = 0
        for f in items:
            if (
                prev is None
                or (f.at - prev).total_seconds() > scene_gap_s
                or (f.at - start).total_seconds() > max_scene_s
            ):
                n += 1
                start = f.at
            prev = f.at
            scenes[f.case_id] = f"{camera_id}#{start:%Y%m%dT%H%M%S}"
    return scenes


def split_scenes(scene_sizes: dict[str, int], val_fraction: float, salt: str = "urbaneye") -> set[str]:
    """Scenes that go to val: in stable hash order until ``val_fraction`` of the frames are val.

    With two or more scenes, at least one goes to val and at least one stays in train.
    """
    if not scene_sizes or val_fraction <= 0:
        return set()
    order = sorted(scene_sizes, key=lambda s: hashlib.sha256(f"{salt}:{s}".encode()).hexdigest())
    total = sum(scene_sizes.values())
    val: set[str] = set()
    n_val = 0
    for scene in order:
        if len(val) >= len(order) - 1:
            break  # keep one scene for training
        if n_val >= val_fraction * total and val:
            break
        val.add(scene)
        n_val += scene_sizes[scene]
    return val


# ------------------------------------------------------------------------------------------------- build


@dataclass(frozen=True)
class BuildOptions:
    camera_group: str | None = None  # only cameras of this group (Camera.group); None = all cameras
    since: dt.datetime | None = None  # only cases reviewed at or after this time
    max_cases: int | None = None  # newest reviewed cases first
    val_fraction: float = 0.25
    scene_gap_s: float = 3600.0
    max_scene_s: float = 6 * 3600.0
    pseudo_conf: float = 0.6
    synth_share: float = SYNTH_SHARE  # fraction of the train split that is synthetic
    synth_seed: int = 0
    synth_style: str | None = None
    synth_size: tuple[int, int] = (960, 540)
    split_salt: str = "urbaneye"
    cameras_file: Path | None = None  # its violations: are the configured kinds; None = settings.cameras_file

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["since"] = self.since.isoformat() if self.since else None
        out["cameras_file"] = str(self.cameras_file) if self.cameras_file else None
        return out


@dataclass
class BuildResult:
    version: str
    manifest: dict[str, Any]
    manifest_uri: str
    sha256: str
    data_yaml: Path | None = None
    counts: dict[str, Any] = field(default_factory=dict)


#: A synthetic source: ``(count, seed, style, size, out_dir) -> [(image_path, [Label...]), ...]``.
SynthSource = Callable[[int, int, str | None, tuple[int, int], Path], list[tuple[Path, list[Label]]]]


def reviewed_cases(session: Session, options: BuildOptions) -> list[Case]:
    stmt = (
        select(Case)
        .where(Case.reviewed_at.is_not(None))
        .options(selectinload(Case.evidence))
        .order_by(Case.reviewed_at.desc(), Case.id)
    )
    if options.since is not None:
        stmt = stmt.where(Case.reviewed_at >= options.since)
    if options.camera_group:
        in_group = select(Camera.id).where(Camera.group == options.camera_group)
        known = select(Camera.id)
        if options.camera_group == "default":  # cameras only in a cameras file belong to "default"
            stmt = stmt.where(Case.camera_id.in_(in_group) | Case.camera_id.not_in(known))
        else:
            stmt = stmt.where(Case.camera_id.in_(in_group))
    if options.max_cases:
        stmt = stmt.limit(options.max_cases)
    return list(session.scalars(stmt))


def build_dataset(
    session: Session,
    *,
    options: BuildOptions | None = None,
    detector: Detector | None = None,
    synth: SynthSource | None = None,
    evidence_store: Any = None,
    store: Any = None,
    settings: Settings | None = None,
    out_dir: Path | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> BuildResult:
    """Build, store and register a dataset version; optionally materialize it at ``out_dir``.

    Args:
        session: database session (a ``DatasetVersion`` row is added and flushed; the caller commits).
        options: what to include and how to split.
        detector: the active model, for pseudo-labels (None = only reviewed boxes are labelled).
        synth: synthetic image source (default: ``datasets.synth`` via ``synth_source``); used only when
            ``options.synth_share > 0``.
        evidence_store / store: where evidence is read / the dataset is written (defaults from settings).
        out_dir: if given, also write the YOLO folder there and return its ``data.yaml``.
        progress: ``(stage, done, total)`` callback (the CLI's tqdm bar).

    Raises:
        DatasetError: no usable reviewed case (nothing to learn from), or an evidence object is missing.
    """
    options = options or BuildOptions()
    settings = settings or get_settings()
    evidence_store = evidence_store or get_store(settings)
    store = store or datasets_store(settings)
    progress = progress or (lambda *_: None)

    cases = reviewed_cases(session, options)
    used: list[tuple[Case, Verdict]] = []
    skipped: dict[str, int] = {}
    for case in cases:
        verdict = verdict_of(case)
        if verdict.use is None:
            skipped[verdict.name] = skipped.get(verdict.name, 0) + 1
            continue
        used.append((case, verdict))
    by_id, issues = review_cases(used, load_catalogue(options.cameras_file or settings.cameras_file))
    frames: list[FrameRef] = []
    for case, _ in used:
        for ev in case.evidence:
            if ev.variant == "clean" and ev.uploaded:
                frames.append(
                    FrameRef(
                        case.id, case.camera_id, ev.frame_ts or case.started_at, ev.key, ev.sha256, ev.seq
                    )
                )
    real = {r.ref_id: r for r in real_frames.real_frames(session, options.camera_group, options.since)}
    frames += [FrameRef(ref, r.camera_id, r.at, r.key, r.sha256, 0) for ref, r in real.items()]
    if not frames:
        raise DatasetError(
            f"no reviewed case with a clean evidence frame ({len(cases)} reviewed, skipped {skipped}) and no "
            "labelled real frame; review some cases first or label frames (#/annotate), or widen --group/--since"
        )

    scenes = assign_scenes(frames, options.scene_gap_s, options.max_scene_s)
    sizes: dict[str, int] = {}
    for f in frames:
        sizes[scenes[f.case_id]] = sizes.get(scenes[f.case_id], 0) + 1
    val_scenes = split_scenes(sizes, options.val_fraction, options.split_salt)
    val_times: dict[str, list[dt.datetime]] = {}
    for f in frames:
        if scenes[f.case_id] in val_scenes:
            val_times.setdefault(f.camera_id, []).append(f.at)

    # One image can be the evidence of several cases (two piles in one frame, or the same frame kept as
    # first sighting and at the dwell crossing): it becomes ONE item whose labels merge every verdict on it,
    # instead of several copies that each label only their own case's box.
    groups: dict[str, list[FrameRef]] = {}
    for f in sorted(frames, key=lambda f: (f.camera_id, f.at, f.case_id, f.seq)):
        groups.setdefault(f.case_id if f.case_id in real else f.sha256, []).append(f)
    items: list[dict[str, Any]] = []
    buffer_dropped = 0
    for i, group in enumerate(groups.values()):
        progress("cases", i, len(groups))
        f = group[0]
        split = "val" if scenes[f.case_id] in val_scenes else "train"
        if split == "train" and any(
            abs((g.at - t).total_seconds()) <= options.scene_gap_s
            for g in group
            for t in val_times.get(g.camera_id, ())
        ):
            buffer_dropped += len(group)  # too close in time to a val frame of this camera: would leak
            continue
        if f.case_id in real:  # a real frame labelled in full by a reviewer: no pseudo-labels
            items.append(real_frames.manifest_item(real[f.case_id], split, scenes, evidence_store, store))
            continue
        try:
            data = read_evidence(evidence_store, f.key, f.sha256)
        except (EvidenceNotFound, EvidenceIntegrityError) as exc:
            raise DatasetError(
                f"evidence {f.key} of case {f.case_id} cannot be used ({exc}); restore it or exclude the case"
            ) from exc
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise DatasetError(f"evidence {f.key} of case {f.case_id} is not a decodable image")
        h, w = image.shape[:2]
        dets = detector.detect(image) if detector is not None else None
        case_ids = list(dict.fromkeys(g.case_id for g in group))
        seqs = {cid: frozenset(g.seq for g in group if g.case_id == cid) for cid in case_ids}  # frames it is
        per_case = [frame_labels(by_id[c], dets, (w, h), options.pseudo_conf, seqs[c]) for c in case_ids]
        labels = merge_frame_labels(per_case)
        key = f"images/{f.sha256}.jpg"
        if not store.exists(key):
            store.put(key, data, "image/jpeg", {"case_id": f.case_id})
        case, verdict = by_id[f.case_id].case, by_id[f.case_id].verdict
        item: dict[str, Any] = {
            "image_sha256": f.sha256,
            "key": key,
            "split": split,
            "source": "case",
            "case_id": case.id,
            "evidence_seq": f.seq,
            "camera_id": f.camera_id,
            "captured_at": _iso(f.at),
            "scene": scenes[f.case_id],
            "verdict": verdict.name,
            "kind": case.kind,
            "width": w,
            "height": h,
            "labels": [lb.to_json() for lb in labels],
        }
        if len(case_ids) > 1:
            item["also_cases"] = [
                {"case_id": cid, "verdict": by_id[cid].verdict.name, "kind": by_id[cid].case.kind}
                for cid in case_ids[1:]
            ]
        items.append(item)
    progress("cases", len(groups), len(groups))

    n_case_train = sum(1 for it in items if it["split"] == "train")
    n_synth = 0
    if options.synth_share > 0 and n_case_train:
        share = min(options.synth_share, 0.95)
        n_synth = max(1, round(share / (1 - share) * n_case_train))
    synth_info: dict[str, Any] = {}
    if n_synth:
        source = synth or synth_source
        with tempfile.TemporaryDirectory(prefix="ue-synth-") as tmp:
            generated = source(
                n_synth, options.synth_seed, options.synth_style, options.synth_size, Path(tmp)
            )
            for j, (path, labels) in enumerate(generated):
                progress("synthetic", j, len(generated))
                data = Path(path).read_bytes()
                sha = sha256_hex(data)
                image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
                h, w = image.shape[:2]
                key = f"images/{sha}{Path(path).suffix.lower() or '.jpg'}"
                if not store.exists(key):
                    store.put(
                        key, data, "image/jpeg" if key.endswith(".jpg") else "image/png", {"source": "synth"}
                    )
                items.append(
                    {
                        "image_sha256": sha,
                        "key": key,
                        "split": "train",
                        "source": "synth",
                        "synth": {
                            "seed": options.synth_seed,
                            "style": options.synth_style,
                            "index": j,
                            "name": Path(path).stem,
                        },
                        "width": w,
                        "height": h,
                        "labels": [lb.to_json() for lb in labels],
                    }
                )
        synth_info = {"count": n_synth, "seed": options.synth_seed, "style": options.synth_style}

    counts = _counts(items)
    counts.update(
        cases_used=len(
            {a["case_id"] for it in items for a in [it, *it.get("also_cases", [])] if "case_id" in a}
        ),
        cases_skipped=skipped,
        buffer_dropped=buffer_dropped,
        scenes={"train": len(set(sizes) - val_scenes), "val": len(val_scenes)},
        real_frames=real_frames.real_frame_counts(items),
        label_issues=issues.to_json(),
    )
    issues.log()
    if counts["val"]["images"] == 0:
        log.warning("dataset has no val images (one scene only); the gate will refuse to promote from it")
    now = utcnow()
    manifest: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "created_at": _iso(now),
        "classes": list(CLASSES),
        "options": options.to_json(),
        "pseudo_labeler": (
            {"model_version": detector.version, "conf": options.pseudo_conf} if detector is not None else None
        ),
        "synthetic": synth_info or None,
        "counts": counts,
        "items": items,
    }
    body_sha = sha256_hex(_canonical({k: v for k, v in manifest.items() if k != "created_at"}))
    version = f"ds-{now:%Y%m%d-%H%M%S}-{body_sha[:8]}"
    manifest["version"] = version
    raw = _canonical(manifest)
    manifest_sha = sha256_hex(raw)
    mkey = f"manifests/{version}.json"
    store.put(mkey, raw, "application/json", {"version": version})
    uri = _manifest_uri(settings, mkey)
    session.add(DatasetVersion(version=version, manifest_uri=uri, sha256=manifest_sha, counts=counts))
    session.flush()
    log.info("dataset %s: %s", version, json.dumps(counts, ensure_ascii=False))
    result = BuildResult(version, manifest, uri, manifest_sha, counts=counts)
    if out_dir is not None:
        result.data_yaml = materialize(manifest, out_dir, store)
    return result


def _counts(items: Iterable[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {
        s: {"images": 0, "boxes": 0, "negatives": 0, "synthetic": 0} for s in ("train", "val")
    }
    per_class: dict[str, dict[str, int]] = {s: {} for s in ("train", "val")}
    for it in items:
        row = out[it["split"]]
        row["images"] += 1
        row["boxes"] += len(it["labels"])
        row["synthetic"] += it["source"] == "synth"
        verdicts = [it.get("verdict", "")] + [a["verdict"] for a in it.get("also_cases", [])]
        row["negatives"] += any(v.startswith("rejected:false") for v in verdicts)
        for lb in it["labels"]:
            per_class[it["split"]][lb["label"]] = per_class[it["split"]].get(lb["label"], 0) + 1
    for s in per_class:
        out[s]["per_class"] = dict(sorted(per_class[s].items()))
    return out


def _iso(t: dt.datetime) -> str:
    t = t if t.tzinfo is not None else t.replace(tzinfo=dt.UTC)
    return t.astimezone(dt.UTC).isoformat()


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


# ------------------------------------------------------------------------------------------- materialize


def load_manifest(
    session: Session, version: str, store: Any = None, settings: Settings | None = None
) -> dict:
    """Read a dataset version's manifest from the store and check it against the registered sha256."""
    row = session.get(DatasetVersion, version)
    if row is None:
        raise DatasetError(
            f"dataset version {version!r} is not registered; build one with `urbaneye dataset build`"
        )
    store = store or datasets_store(settings)
    raw = store.get(f"manifests/{version}.json")
    got = sha256_hex(raw)
    if got != row.sha256:
        raise DatasetError(f"manifest of {version} has sha256 {got[:12]}…, registry says {row.sha256[:12]}…")
    return json.loads(raw)


def materialize(manifest: dict[str, Any], out_dir: Path, store: Any) -> Path:
    """Write the YOLO folder of ``manifest`` to ``out_dir`` (images checked against their sha256).

    Layout: ``images/{train,val}/<sha>.jpg``, ``labels/{train,val}/<sha>.txt`` (class cx cy w h,
    normalised), ``data.yaml`` (names in ``OBJECT_KINDS`` order), ``manifest.json``. Returns data.yaml.
    """
    out_dir = Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    classes = list(manifest["classes"])
    for split in ("train", "val"):
        (out_dir / "images" / split).mkdir(parents=True)
        (out_dir / "labels" / split).mkdir(parents=True)
    for it in manifest["items"]:
        data = store.get(it["key"])
        got = sha256_hex(data)
        if got != it["image_sha256"]:
            raise DatasetError(
                f"dataset image {it['key']} has sha256 {got[:12]}…, manifest says {it['image_sha256'][:12]}…"
            )
        stem = it["image_sha256"]
        suffix = Path(it["key"]).suffix or ".jpg"
        (out_dir / "images" / it["split"] / f"{stem}{suffix}").write_bytes(data)
        w, h = float(it["width"]), float(it["height"])
        lines = []
        for lb in it["labels"]:
            x1, y1, x2, y2 = lb["xyxy"]
            cls = classes.index(lb["label"])
            lines.append(
                f"{cls} {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} {(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}"
            )
        (out_dir / "labels" / it["split"] / f"{stem}.txt").write_text(
            "\n".join(lines) + ("\n" if lines else "")
        )
    data_yaml = out_dir / "data.yaml"
    doc = {
        "path": str(out_dir.resolve()),
        "train": "images/train",
        "val": "images/val",
        "names": dict(enumerate(classes)),
        "dataset_version": manifest.get("version", ""),
    }
    data_yaml.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False))
    (out_dir / "manifest.json").write_bytes(_canonical(manifest))
    return data_yaml


# ------------------------------------------------------------------------------------------------- synth


def synth_source(
    count: int, seed: int, style: str | None, size: tuple[int, int], out_dir: Path
) -> list[tuple[Path, list[Label]]]:
    """Synthetic images with ground truth from ``datasets.synth`` (the bootstrap generator)."""
    data_yaml = Path(
        generate_images(out_dir, count=count, seed=seed, val_fraction=0.0, size=tuple(size), style=style)
    )
    return read_yolo_split(data_yaml, "train") + read_yolo_split(data_yaml, "val")


def read_yolo_split(data_yaml: Path, split: str) -> list[tuple[Path, list[Label]]]:
    """``[(image, labels in pixels)]`` of a YOLO dataset split (labels/ mirrors images/)."""
    doc = yaml.safe_load(Path(data_yaml).read_text()) or {}
    names = doc["names"]
    names = [names[k] for k in sorted(names)] if isinstance(names, dict) else list(names)
    root = Path(doc.get("path") or Path(data_yaml).parent)
    root = root if root.is_absolute() else (Path(data_yaml).parent / root)
    entry = doc.get(split)
    if not entry:
        return []
    img_dir = root / entry
    out: list[tuple[Path, list[Label]]] = []
    for img in sorted(p for p in img_dir.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"}):
        rel = img.relative_to(root)
        parts = list(rel.parts)
        parts[parts.index("images")] = "labels"
        txt = (root / Path(*parts)).with_suffix(".txt")
        h, w = cv2.imread(str(img)).shape[:2]
        labels: list[Label] = []
        if txt.exists():
            for line in txt.read_text().splitlines():
                if not line.strip():
                    continue
                c, cx, cy, bw, bh = line.split()[:5]
                cx, cy, bw, bh = float(cx) * w, float(cy) * h, float(bw) * w, float(bh) * h
                name = names[int(c)]
                if name in CLASSES:
                    labels.append(Label(name, (cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2), "synth"))
        out.append((img, labels))
    return out
