"""How a model's cases were judged by reviewers: its real-world precision, per kind and per camera.

Every case records the model that produced it (``Case.model_version``: the registry version the stream
worker's ``ModelWatcher`` loaded, or the detector's own ``<name>-<sha256[:12]>`` while a group ran its
fallback file). A report counts both names of one model file, so the shipped model's cases made before it
was registered count for ``bootstrap-<sha12>`` too.

    precision = confirmed / (confirmed + rejected)      (pending cases are not judged yet; None if none)

Example:
    >>> model_report(session, "coco-v8n").to_json()["kinds"]["bike_misparking"]   # doctest: +SKIP
    {'cases': 12, 'pending': 2, 'confirmed': 7, 'rejected': 3, 'reasons': {'false_detection': 3},
     'precision': 0.7}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from urbaneye.db.models import CONFIRMED_STATUSES, Case, CaseStatus
from urbaneye.registry import get_version

_CONFIRMED = {str(s) for s in CONFIRMED_STATUSES}


@dataclass
class Verdicts:
    """Reviewer verdicts on a set of cases. ``reasons``: rejection reason -> count."""

    cases: int = 0
    pending: int = 0
    confirmed: int = 0
    rejected: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def precision(self) -> float | None:
        judged = self.confirmed + self.rejected
        return round(self.confirmed / judged, 4) if judged else None

    def add(self, status: str, reason: str | None, n: int) -> None:
        self.cases += n
        if status == CaseStatus.REJECTED:
            self.rejected += n
            key = reason or "unspecified"
            self.reasons[key] = self.reasons.get(key, 0) + n
        elif status in _CONFIRMED:
            self.confirmed += n
        else:
            self.pending += n

    def to_json(self) -> dict[str, Any]:
        return {
            "cases": self.cases,
            "pending": self.pending,
            "confirmed": self.confirmed,
            "rejected": self.rejected,
            "reasons": dict(sorted(self.reasons.items())),
            "precision": self.precision,
        }


@dataclass
class CameraVerdicts:
    total: Verdicts = field(default_factory=Verdicts)
    kinds: dict[str, Verdicts] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "total": self.total.to_json(),
            "kinds": {k: v.to_json() for k, v in sorted(self.kinds.items())},
        }


@dataclass
class ModelReport:
    """Verdicts on one model's cases: in all, per violation kind, per camera (and kind within it).

    Attributes:
        version: the registry version.
        sha256: its ONNX file's digest.
        counted_as: the ``Case.model_version`` strings found for it.
    """

    version: str
    sha256: str
    counted_as: list[str] = field(default_factory=list)
    total: Verdicts = field(default_factory=Verdicts)
    kinds: dict[str, Verdicts] = field(default_factory=dict)
    cameras: dict[str, CameraVerdicts] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "sha256": self.sha256,
            "counted_as": self.counted_as,
            "total": self.total.to_json(),
            "kinds": {k: v.to_json() for k, v in sorted(self.kinds.items())},
            "cameras": {c: v.to_json() for c, v in sorted(self.cameras.items())},
        }


def model_report(session: Session, version: str) -> ModelReport:
    """Count the reviewer verdicts on the cases ``version`` produced.

    Raises:
        urbaneye.registry.ModelNotFound: no such version.
    """
    mv = get_version(session, version)
    produced_by = or_(Case.model_version == mv.version, Case.model_version.like(f"%-{mv.sha256[:12]}"))
    rows = session.execute(
        select(Case.model_version, Case.camera_id, Case.kind, Case.status, Case.reject_reason, func.count())
        .where(produced_by)
        .group_by(Case.model_version, Case.camera_id, Case.kind, Case.status, Case.reject_reason)
    )
    report = ModelReport(version=mv.version, sha256=mv.sha256)
    names: set[str] = set()
    for name, camera_id, kind, status, reason, n in rows:
        names.add(name)
        camera = report.cameras.setdefault(camera_id, CameraVerdicts())
        for verdicts in (
            report.total,
            report.kinds.setdefault(kind, Verdicts()),
            camera.total,
            camera.kinds.setdefault(kind, Verdicts()),
        ):
            verdicts.add(status, reason, int(n))
    report.counted_as = sorted(names)
    return report
