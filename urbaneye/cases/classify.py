"""A reviewer's kind for a case: 待分类 (unclassified) cases get theirs before they are confirmed (issue 14), and
any case may be given the right kind (issue 19's configured kinds). The box becomes a training label."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from urbaneye.audit import append_audit
from urbaneye.cases.describe import describe_case
from urbaneye.db.models import Case, Zone
from vision.config import ZoneConfig


@dataclass(frozen=True)
class Classification:
    """A reviewer's kind for a case (待分类 or mis-kinded): the kind with its code and names, and the object's
    box (``xyxy`` pixels of evidence frame ``seq``, possibly adjusted) with the object class it shows."""

    kind: str
    gbt_code: str
    gbt_name: str
    kind_name_zh: str
    label: str  # an ObjectKind value: the training label of the box
    bbox_xyxy: tuple[float, float, float, float]
    seq: int = 2


def classify_case(session: Session, case: Case, c: Classification, actor: str) -> None:
    """Give ``case`` the reviewer's kind: kind, code and names replace the case's, it is no longer 待分类, and
    the box with its object class becomes a training correction (``adjust`` of the case's box, as the dataset
    builder reads corrections; ``classified_from`` keeps what the case was, for an undo). Audited as
    ``classify``. Does not commit."""
    before = {
        "kind": case.kind,
        "gbt_code": case.gbt_code,
        "gbt_name": case.gbt_name,
        "kind_name_zh": case.kind_name_zh,
        "unclassified": bool(case.unclassified),
    }
    box = [round(float(v), 1) for v in c.bbox_xyxy]
    correction = {
        "action": "adjust",
        "xyxy": box,
        "label": c.label,
        "kind": c.kind,
        "seq": c.seq,
        "classified_from": before,
    }
    case.corrections = [*(case.corrections or []), correction]
    _set_kind(session, case, c.kind, c.gbt_code, c.gbt_name, c.kind_name_zh, unclassified=False)
    detail = {"from_kind": before["kind"], "to_kind": c.kind, "gbt_code": c.gbt_code, "label": c.label}
    detail |= {"bbox_xyxy": box, "was_unclassified": before["unclassified"]}
    append_audit(session, actor, "classify", "case", case.id, case.status, case.status, detail)


def unclassify_case(session: Session, case: Case, actor: str) -> None:
    """Undo the reviewer's classification, if the case's last correction is one: the kind, code, names and
    待分类 flag it had come back and the correction goes."""
    last = (case.corrections or [])[-1:]
    if not last or "classified_from" not in last[0]:
        return
    before = last[0]["classified_from"]
    case.corrections = list(case.corrections[:-1])
    undone = {"from_kind": case.kind, "to_kind": before["kind"], "unclassified": before["unclassified"]}
    _set_kind(
        session,
        case,
        before["kind"],
        before["gbt_code"],
        before["gbt_name"],
        before["kind_name_zh"],
        unclassified=before["unclassified"],
    )
    append_audit(session, actor, "unclassify", "case", case.id, case.status, case.status, undone)


def _set_kind(
    session: Session, case: Case, kind: str, code: str, name: str, name_zh: str, *, unclassified: bool
) -> None:
    case.kind, case.gbt_code, case.gbt_name, case.kind_name_zh = kind, code, name, name_zh
    case.unclassified = unclassified
    zone = session.scalar(select(Zone).where(Zone.camera_id == case.camera_id, Zone.zone_id == case.zone_id))
    case.description = describe_case(
        case.kind,
        case.address,
        case.duration_s,
        name_zh=case.kind_name_zh,
        zone_name=ZoneConfig.model_validate(zone.config).name if zone is not None else "",
        object_count=case.object_count,
        escalation=case.escalation,
        closed=case.ended_at is not None,
        unclassified=unclassified,
    )
