"""The annotation queue of real frames (issue 14): add sampled frames, lease them to reviewers, take labels.

Stream workers add items (``add_item``, from ``streams.annotation_sampler``); the API leases the next one to
a reviewer (``next_item``: one conditional ``UPDATE ... WHERE free`` per candidate, so two reviewers never
get the same item), and takes the reviewer's answer: boxes (``submit_labels``), "nothing here"
(``mark_negative``: the frame is a negative) or ``skip``. The dataset builder reads ``training_items``.

Boxes are typed (``Box``, ``Proposal``) on this side of the JSON columns; ``xyxy`` are pixels of the frame.

Example:
    >>> item = next_item(session, user_id="u1", now=utcnow())  # doctest: +SKIP
    >>> submit_labels(session, item.id, "u1", [Box("garbage", (10, 20, 110, 90))], utcnow())  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.orm import Session

from urbaneye.db.annotations import TRAINING_STATUSES, AnnotationItem, AnnotationStatus, SampleReason
from urbaneye.db.models import utcnow
from vision.types import OBJECT_KINDS

#: How long an item stays on one reviewer's screen before anyone else may take it.
LEASE_S = 300
#: The most boxes one frame may carry (a street view has dozens of objects at most).
MAX_BOXES = 200
#: A box must be at least this many pixels on each side (a click is not a box).
MIN_BOX_PX = 2.0
LABELS: tuple[str, ...] = tuple(str(k) for k in OBJECT_KINDS)


class AnnotationError(Exception):
    """A refused request: ``code`` for the API (``not_found``, ``leased``, ``done``, ``bad_box``), message
    in Chinese for the reviewer."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Box:
    """A reviewer's box: ``label`` one of the eight object kinds, ``xyxy`` pixels of the frame."""

    label: str
    xyxy: tuple[float, float, float, float]

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "xyxy": [round(float(v), 2) for v in self.xyxy]}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Box:
        x1, y1, x2, y2 = (float(v) for v in raw["xyxy"])
        return cls(str(raw["label"]), (x1, y1, x2, y2))


@dataclass(frozen=True)
class Proposal:
    """A box the model (``source="model"``) or the static-object detector (``"unknown"``) saw on the frame."""

    label: str  # an object kind, or ``unknown_object``
    xyxy: tuple[float, float, float, float]
    score: float
    source: str  # model | unknown

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "xyxy": [round(float(v), 2) for v in self.xyxy],
            "score": round(float(self.score), 4),
            "source": self.source,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Proposal:
        x1, y1, x2, y2 = (float(v) for v in raw["xyxy"])
        return cls(str(raw["label"]), (x1, y1, x2, y2), float(raw["score"]), str(raw["source"]))


@dataclass(frozen=True)
class NewItem:
    """A sampled frame already in the evidence store, with its provenance."""

    camera_id: str
    frame_at: dt.datetime
    ts_s: float
    reason: SampleReason
    time_bucket: str
    model_version: str
    key: str
    sha256: str
    width: int
    height: int
    proposals: tuple[Proposal, ...]


def frame_key(camera_id: str, frame_at: dt.datetime, sha256: str) -> str:
    """Evidence-store key of a sampled frame: ``annotations/{camera}/{yyyy}/{mm}/{dd}/{sha256}.jpg``."""
    t = frame_at.astimezone(dt.UTC)
    return f"annotations/{camera_id}/{t:%Y/%m/%d}/{sha256}.jpg"


def pending_count(session: Session, camera_id: str) -> int:
    """Items of the camera still waiting for a reviewer."""
    stmt = select(func.count()).where(
        AnnotationItem.camera_id == camera_id, AnnotationItem.status == AnnotationStatus.PENDING.value
    )
    return int(session.scalar(stmt) or 0)


def has_frame(session: Session, sha256: str) -> bool:
    return session.scalar(select(AnnotationItem.id).where(AnnotationItem.sha256 == sha256)) is not None


def add_item(session: Session, new: NewItem) -> AnnotationItem:
    """Add a pending item (flushed, not committed)."""
    item = AnnotationItem(
        camera_id=new.camera_id,
        frame_at=new.frame_at,
        ts_s=new.ts_s,
        reason=new.reason.value,
        time_bucket=new.time_bucket,
        model_version=new.model_version,
        key=new.key,
        sha256=new.sha256,
        width=new.width,
        height=new.height,
        proposals=[p.to_json() for p in new.proposals],
        status=AnnotationStatus.PENDING.value,
        labels=[],
    )
    session.add(item)
    session.flush()
    return item


def proposals_of(item: AnnotationItem) -> list[Proposal]:
    return [Proposal.from_json(p) for p in item.proposals]


def boxes_of(item: AnnotationItem) -> list[Box]:
    return [Box.from_json(b) for b in item.labels]


def _aware(t: dt.datetime | None) -> dt.datetime | None:
    return None if t is None else (t if t.tzinfo else t.replace(tzinfo=dt.UTC))


def _free_for(user_id: str, now: dt.datetime):  # noqa: ANN202 - a SQL expression
    return or_(
        AnnotationItem.leased_by.is_(None),
        AnnotationItem.leased_by == user_id,
        AnnotationItem.lease_expires_at <= now,
    )


def next_item(
    session: Session, user_id: str, now: dt.datetime, camera_id: str | None = None, lease_s: float = LEASE_S
) -> AnnotationItem | None:
    """Lease the reviewer's next pending item (theirs first, then the oldest free one); committed.

    Returns None when nothing is left for this reviewer.
    """
    base = [AnnotationItem.status == AnnotationStatus.PENDING.value, _free_for(user_id, now)]
    if camera_id:
        base.append(AnnotationItem.camera_id == camera_id)
    mine_first = case((AnnotationItem.leased_by == user_id, 0), else_=1)  # NULL-safe, unlike a bare ==
    order = (mine_first, AnnotationItem.created_at, AnnotationItem.id)
    candidates = session.scalars(select(AnnotationItem.id).where(*base).order_by(*order).limit(20)).all()
    expires = now + dt.timedelta(seconds=lease_s)
    for item_id in candidates:
        taken = session.execute(
            update(AnnotationItem)
            .where(AnnotationItem.id == item_id, *base)
            .values(leased_by=user_id, lease_expires_at=expires)
            .execution_options(synchronize_session=False)
        ).rowcount
        session.commit()
        if taken:
            return session.get(AnnotationItem, item_id, populate_existing=True)
    return None


def _held(session: Session, item_id: str, user_id: str, now: dt.datetime) -> AnnotationItem:
    """The pending item, if nobody else holds it now (else ``AnnotationError``)."""
    item = session.get(AnnotationItem, item_id, populate_existing=True, with_for_update=True)
    if item is None:
        raise AnnotationError("not_found", f"没有标注项 {item_id}")
    if item.status != AnnotationStatus.PENDING.value:
        raise AnnotationError("done", f"标注项 {item_id} 已处理（{item.status}），请取下一项")
    expires = _aware(item.lease_expires_at)
    if item.leased_by not in (None, user_id) and expires is not None and expires > now:
        raise AnnotationError("leased", f"标注项 {item_id} 正由其他审核员标注，请取下一项")
    return item


def check_boxes(boxes: Sequence[Box], width: int, height: int) -> list[Box]:
    """The boxes clipped to the frame; ``AnnotationError("bad_box")`` naming the first bad one."""
    if len(boxes) > MAX_BOXES:
        raise AnnotationError("bad_box", f"框太多（{len(boxes)} 个），一帧最多 {MAX_BOXES} 个")
    out: list[Box] = []
    for n, box in enumerate(boxes, 1):
        if box.label not in LABELS:
            raise AnnotationError(
                "bad_box", f"第 {n} 个框的类别 {box.label!r} 未知；可用类别：{', '.join(LABELS)}"
            )
        if not all(math.isfinite(v) for v in box.xyxy):
            raise AnnotationError("bad_box", f"第 {n} 个框的坐标不是有限数")
        x1, y1, x2, y2 = box.xyxy
        x1, x2 = max(0.0, min(x1, x2)), min(float(width), max(x1, x2))
        y1, y2 = max(0.0, min(y1, y2)), min(float(height), max(y1, y2))
        if x2 - x1 < MIN_BOX_PX or y2 - y1 < MIN_BOX_PX:
            raise AnnotationError(
                "bad_box", f"第 {n} 个框在画面（{width}×{height}）内太小或在画面外：{list(box.xyxy)}"
            )
        out.append(Box(box.label, (x1, y1, x2, y2)))
    return out


def _finish(item: AnnotationItem, status: AnnotationStatus, user_id: str, now: dt.datetime) -> None:
    item.status = status.value
    item.labelled_by = user_id
    item.labelled_at = now
    item.leased_by = None
    item.lease_expires_at = None


def submit_labels(
    session: Session, item_id: str, user_id: str, boxes: Sequence[Box], now: dt.datetime
) -> AnnotationItem:
    """Store the reviewer's boxes; an empty list means the frame has none of the eight classes (a
    negative, as ``mark_negative``). Committed."""
    item = _held(session, item_id, user_id, now)
    clean = check_boxes(boxes, item.width, item.height)
    item.labels = [b.to_json() for b in clean]
    _finish(item, AnnotationStatus.LABELLED if clean else AnnotationStatus.NEGATIVE, user_id, now)
    session.commit()
    return item


def mark_negative(session: Session, item_id: str, user_id: str, now: dt.datetime) -> AnnotationItem:
    """ "Nothing here": the whole frame is background for all eight classes. Committed."""
    item = _held(session, item_id, user_id, now)
    item.labels = []
    _finish(item, AnnotationStatus.NEGATIVE, user_id, now)
    session.commit()
    return item


def skip(session: Session, item_id: str, user_id: str, now: dt.datetime) -> AnnotationItem:
    """The reviewer cannot tell: the item leaves the queue and is not used for training. Committed."""
    item = _held(session, item_id, user_id, now)
    _finish(item, AnnotationStatus.SKIPPED, user_id, now)
    session.commit()
    return item


def release(session: Session, user_id: str) -> int:
    """Give back every lease the reviewer holds (logout, leaving the page); not committed."""
    n = session.execute(
        update(AnnotationItem)
        .where(AnnotationItem.leased_by == user_id, AnnotationItem.status == AnnotationStatus.PENDING.value)
        .values(leased_by=None, lease_expires_at=None)
        .execution_options(synchronize_session=False)
    ).rowcount
    return int(n or 0)


def list_items(
    session: Session,
    status: AnnotationStatus | None = None,
    camera_id: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[AnnotationItem], int]:
    """Items newest first, and how many match in all."""
    where = []
    if status is not None:
        where.append(AnnotationItem.status == status.value)
    if camera_id:
        where.append(AnnotationItem.camera_id == camera_id)
    total = int(session.scalar(select(func.count()).select_from(AnnotationItem).where(*where)) or 0)
    stmt = (
        select(AnnotationItem)
        .where(*where)
        .order_by(AnnotationItem.created_at.desc(), AnnotationItem.id)
        .limit(limit)
        .offset(offset)
    )
    return list(session.scalars(stmt)), total


@dataclass(frozen=True)
class QueueStats:
    by_status: dict[str, int]
    by_reason: dict[str, int]
    by_camera: dict[str, dict[str, int]]
    boxes: int
    pending_free: int  # pending and not leased to anyone now


def stats(session: Session, now: dt.datetime | None = None) -> QueueStats:
    """Counts of the queue: per status, per sampling reason, per camera and status, labelled boxes."""
    now = now or utcnow()
    by_status = {s.value: 0 for s in AnnotationStatus}
    by_reason = {r.value: 0 for r in SampleReason}
    by_camera: dict[str, dict[str, int]] = {}
    rows = session.execute(
        select(AnnotationItem.camera_id, AnnotationItem.status, AnnotationItem.reason, func.count()).group_by(
            AnnotationItem.camera_id, AnnotationItem.status, AnnotationItem.reason
        )
    ).all()
    for camera_id, status, reason, n in rows:
        by_status[status] = by_status.get(status, 0) + n
        by_reason[reason] = by_reason.get(reason, 0) + n
        cam = by_camera.setdefault(camera_id, {s.value: 0 for s in AnnotationStatus})
        cam[status] = cam.get(status, 0) + n
    labelled = session.scalars(
        select(AnnotationItem.labels).where(AnnotationItem.status == AnnotationStatus.LABELLED.value)
    ).all()
    free = session.scalar(
        select(func.count()).where(
            AnnotationItem.status == AnnotationStatus.PENDING.value,
            or_(AnnotationItem.leased_by.is_(None), AnnotationItem.lease_expires_at <= now),
        )
    )
    return QueueStats(by_status, by_reason, by_camera, sum(len(x) for x in labelled), int(free or 0))


def training_items(
    session: Session, camera_ids: Sequence[str] | None = None, since: dt.datetime | None = None
) -> list[AnnotationItem]:
    """Labelled items and negatives (what the dataset builder takes), oldest frame first."""
    where = [AnnotationItem.status.in_(TRAINING_STATUSES)]
    if camera_ids is not None:
        where.append(AnnotationItem.camera_id.in_(list(camera_ids)))
    if since is not None:
        where.append(and_(AnnotationItem.labelled_at.is_not(None), AnnotationItem.labelled_at >= since))
    stmt = select(AnnotationItem).where(*where).order_by(AnnotationItem.frame_at, AnnotationItem.id)
    return list(session.scalars(stmt))
