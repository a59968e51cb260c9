"""Real frames labelled in the annotation queue (issue 14), as dataset items.

The stream workers sample frames worth labelling (``streams.annotation_sampler``) and reviewers label them
in the UI (``#/annotate``): every object of the eight classes boxed (``labelled``), or "nothing here"
(``negative``: a frame that is background for all eight). Unlike a case frame, such a frame is labelled
in full by a person, so it gets no pseudo-labels: its boxes are the whole truth, and a negative teaches
the model where it must see nothing.

``datasets.builder.build_dataset`` takes these frames beside the case frames: they share the scene split
(one camera's frames close in time go to the same side, so no scene leaks from train to val), and each
becomes a manifest item with ``source: "real_frame"`` and its provenance (annotation item, camera, frame
time, why it was sampled, model version, the model's proposals, reviewer). ``write_real_frames_split``
adds the real frames of val to a materialised dataset as their own split (``real_frames``), which the
retraining report scores separately from the rest of val and from the synthetic regression set.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from datasets.labels import DatasetError, Label
from urbaneye.annotations import boxes_of, proposals_of, training_items
from urbaneye.db.annotations import AnnotationItem
from urbaneye.db.models import Camera
from urbaneye.storage import EvidenceIntegrityError, EvidenceNotFound, EvidenceStore, read_evidence

#: ``FrameRef.case_id`` prefix of a real frame (the builder's split keys frames by that id).
REF_PREFIX = "annotation:"
#: ``source`` of a real frame's manifest item, and of its labels.
SOURCE = "real_frame"
LABEL_SOURCE = "annotation"
#: The split name a materialised dataset's ``data.yaml`` gets for the real frames of val.
SPLIT = "real_frames"


@dataclass(frozen=True)
class RealFrame:
    """A labelled or negative frame of the annotation queue, with its provenance."""

    item_id: str
    camera_id: str
    at: dt.datetime
    key: str
    sha256: str
    width: int
    height: int
    status: str  # labelled | negative
    reason: str
    time_bucket: str
    model_version: str
    labels: tuple[Label, ...]
    proposals: tuple[dict[str, Any], ...]
    labelled_by: str
    labelled_at: dt.datetime | None

    @property
    def ref_id(self) -> str:
        return REF_PREFIX + self.item_id


def _of(item: AnnotationItem) -> RealFrame:
    return RealFrame(
        item_id=item.id,
        camera_id=item.camera_id,
        at=item.frame_at,
        key=item.key,
        sha256=item.sha256,
        width=item.width,
        height=item.height,
        status=item.status,
        reason=item.reason,
        time_bucket=item.time_bucket,
        model_version=item.model_version,
        labels=tuple(Label(b.label, b.xyxy, LABEL_SOURCE) for b in boxes_of(item)),
        proposals=tuple(p.to_json() for p in proposals_of(item)),
        labelled_by=item.labelled_by or "",
        labelled_at=item.labelled_at,
    )


def real_frames(
    session: Session, camera_group: str | None = None, since: dt.datetime | None = None
) -> list[RealFrame]:
    """The queue's labelled frames and negatives, optionally of one camera group and labelled since a time.

    A camera that is only in a cameras file (no ``cameras`` row) belongs to the ``default`` group.
    """
    camera_ids = None
    if camera_group:
        in_group = set(session.scalars(select(Camera.id).where(Camera.group == camera_group)))
        if camera_group == "default":
            known = set(session.scalars(select(Camera.id)))
            every = set(session.scalars(select(AnnotationItem.camera_id).distinct()))
            in_group |= every - known
        camera_ids = sorted(in_group)
    return [_of(item) for item in training_items(session, camera_ids, since)]


def _iso(t: dt.datetime) -> str:
    return (t if t.tzinfo else t.replace(tzinfo=dt.UTC)).astimezone(dt.UTC).isoformat()


def manifest_item(
    frame: RealFrame, split: str, scenes: dict[str, str], evidence_store: EvidenceStore, store: EvidenceStore
) -> dict[str, Any]:
    """Copy the frame into the dataset store (checked against its SHA-256) and return its manifest item
    (``scenes``: the builder's ``{ref id: scene}``).

    Raises:
        DatasetError: the frame is missing from the evidence store or its bytes changed.
    """
    try:
        data = read_evidence(evidence_store, frame.key, frame.sha256)
    except (EvidenceNotFound, EvidenceIntegrityError) as exc:
        raise DatasetError(
            f"frame {frame.key} of annotation item {frame.item_id} cannot be used ({exc}); restore it, or "
            "skip the item in the annotation queue"
        ) from exc
    key = f"images/{frame.sha256}.jpg"
    if not store.exists(key):
        store.put(key, data, "image/jpeg", {"annotation_item": frame.item_id})
    return {
        "image_sha256": frame.sha256,
        "key": key,
        "split": split,
        "source": SOURCE,
        "annotation_item": frame.item_id,
        "camera_id": frame.camera_id,
        "captured_at": _iso(frame.at),
        "scene": scenes[frame.ref_id],
        "verdict": f"annotation:{frame.status}",
        "sampled_because": frame.reason,
        "time_bucket": frame.time_bucket,
        "model_version": frame.model_version,
        "proposals": list(frame.proposals),
        "labelled_by": frame.labelled_by,
        "labelled_at": _iso(frame.labelled_at) if frame.labelled_at else None,
        "width": frame.width,
        "height": frame.height,
        "labels": [lb.to_json() for lb in frame.labels],
    }


def real_frame_counts(items: Iterable[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """``{"train"|"val": {"images", "boxes", "negatives"}}`` of the real frames among manifest items."""
    out = {s: {"images": 0, "boxes": 0, "negatives": 0} for s in ("train", "val")}
    for it in items:
        if it["source"] != SOURCE:
            continue
        row = out[it["split"]]
        row["images"] += 1
        row["boxes"] += len(it["labels"])
        row["negatives"] += not it["labels"]
    return out


def write_real_frames_split(manifest: dict[str, Any], data_yaml: Path) -> int:
    """Add the real frames of val to a materialised dataset as split ``real_frames`` (a list file beside
    ``data.yaml``); returns how many there are (0: no split is added)."""
    data_yaml = Path(data_yaml)
    root = data_yaml.parent
    lines = [
        f"images/val/{it['image_sha256']}{Path(it['key']).suffix or '.jpg'}"
        for it in manifest["items"]
        if it["source"] == SOURCE and it["split"] == "val"
    ]
    if not lines:
        return 0
    (root / f"{SPLIT}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    doc = yaml.safe_load(data_yaml.read_text(encoding="utf-8"))
    doc[SPLIT] = f"{SPLIT}.txt"
    data_yaml.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return len(lines)
