"""Hash-chained audit log: ``hash = sha256(prev_hash + canonical(row))``.

Appends are serialised so the chain never forks: on PostgreSQL a transaction-scoped advisory lock, on
SQLite a write lock taken before the chain head is read. ``verify_chain`` walks the table in id order and
names the first row whose hash or link does not match (a tampered, inserted or deleted row).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from urbaneye.db.models import AuditLog

GENESIS_HASH = "0" * 64
#: Arbitrary constant key of the PostgreSQL advisory lock that serialises chain appends.
_PG_LOCK_KEY = 0x75726261_6E657965 & 0x7FFFFFFFFFFFFFFF


def _utc_iso(at: dt.datetime) -> str:
    # SQLite returns naive datetimes (stored as UTC); PostgreSQL returns aware ones. Same text either way.
    if at.tzinfo is not None:
        at = at.astimezone(dt.UTC).replace(tzinfo=None)
    return at.isoformat(timespec="microseconds")


def canonical(row: AuditLog) -> bytes:
    """The bytes a row's hash covers (everything except ``id``, ``prev_hash`` and ``hash``)."""
    body = {
        "at": _utc_iso(row.at),
        "actor": row.actor,
        "action": row.action,
        "entity": row.entity,
        "entity_id": row.entity_id,
        "from_status": row.from_status or "",
        "to_status": row.to_status or "",
        "detail": row.detail or {},
    }
    return json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str).encode()


def row_hash(prev_hash: str, row: AuditLog) -> str:
    return hashlib.sha256(prev_hash.encode() + canonical(row)).hexdigest()


def _lock_chain(session: Session) -> None:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
    elif dialect == "sqlite":
        # A write statement takes SQLite's RESERVED lock for the rest of the transaction, so no other
        # connection can append between our read of the head and our insert.
        session.execute(text("UPDATE audit_log SET id = id WHERE 0"))


def append_audit(
    session: Session,
    actor: str,
    action: str,
    entity: str,
    entity_id: str,
    from_status: str = "",
    to_status: str = "",
    detail: dict[str, Any] | None = None,
) -> AuditLog:
    """Append one row to the chain in the caller's transaction (committed with the change it records).

    Example:
        >>> append_audit(s, "user:42", "transition", "case", case.id, "pending_review", "confirmed")
    """
    _lock_chain(session)
    head = session.execute(select(AuditLog.hash).order_by(AuditLog.id.desc()).limit(1)).scalar_one_or_none()
    prev = head or GENESIS_HASH
    # Microsecond precision is what both databases store, so the hash survives the round trip.
    now = dt.datetime.now(dt.UTC)
    row = AuditLog(
        at=now,
        actor=actor[:64],
        action=action,
        entity=entity,
        entity_id=str(entity_id),
        from_status=str(from_status or ""),
        to_status=str(to_status or ""),
        detail=json.loads(json.dumps(detail or {}, default=str)),
        prev_hash=prev,
    )
    row.hash = row_hash(prev, row)
    session.add(row)
    session.flush()
    return row


@dataclass(frozen=True)
class ChainProblem:
    audit_id: int
    problem: str

    def __str__(self) -> str:
        return f"audit_log id={self.audit_id}: {self.problem}"


def _iter_rows(session: Session, batch: int = 1000) -> Iterator[AuditLog]:
    last_id = 0
    while True:
        rows = session.scalars(
            select(AuditLog).where(AuditLog.id > last_id).order_by(AuditLog.id).limit(batch)
        ).all()
        if not rows:
            return
        yield from rows
        last_id = rows[-1].id
        session.expunge_all()


def verify_chain(session: Session) -> tuple[int, list[ChainProblem]]:
    """Walk the chain. Returns (rows checked, problems); no problems means intact."""
    problems: list[ChainProblem] = []
    prev = GENESIS_HASH
    count = 0
    for row in _iter_rows(session):
        count += 1
        if row.prev_hash != prev:
            problems.append(
                ChainProblem(
                    row.id, "prev_hash does not match the previous row (a row was deleted or inserted)"
                )
            )
        if row_hash(row.prev_hash, row) != row.hash:
            problems.append(ChainProblem(row.id, "content does not match its hash (row was altered)"))
        prev = row.hash
    return count, problems


@dataclass(frozen=True)
class EvidenceProblem:
    evidence_id: int
    case_id: str
    key: str
    problem: str

    def __str__(self) -> str:
        return f"evidence id={self.evidence_id} case={self.case_id} key={self.key}: {self.problem}"


def verify_evidence(session: Session, store) -> tuple[int, list[EvidenceProblem]]:  # noqa: ANN001 - EvidenceStore
    """Read every uploaded evidence object back and compare its SHA-256 with the database."""
    from urbaneye.db.models import Evidence
    from urbaneye.storage import EvidenceNotFound, EvidenceStoreUnavailable, sha256_hex

    problems: list[EvidenceProblem] = []
    count = 0
    last_id = 0
    while True:
        rows = session.scalars(
            select(Evidence)
            .where(Evidence.id > last_id, Evidence.uploaded.is_(True))
            .order_by(Evidence.id)
            .limit(500)
        ).all()
        if not rows:
            break
        for e in rows:
            count += 1
            try:
                actual = sha256_hex(store.get(e.key))
            except EvidenceNotFound:
                problems.append(EvidenceProblem(e.id, e.case_id, e.key, "object is missing from the store"))
                continue
            except EvidenceStoreUnavailable as exc:
                problems.append(EvidenceProblem(e.id, e.case_id, e.key, f"store unreachable: {exc}"))
                continue
            if actual != e.sha256:
                problems.append(
                    EvidenceProblem(
                        e.id, e.case_id, e.key, f"sha256 {actual} != recorded {e.sha256} (object altered)"
                    )
                )
        last_id = rows[-1].id
    return count, problems
