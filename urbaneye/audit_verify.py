"""``urbaneye audit verify``: the audit chain against its anchors, and the rows against the chain.

``verify_all`` walks the chain (links and MACs), compares it with the head file and the newest signed
checkpoint, and checks that every covered row is as its last ``row_*`` entry says; ``verify_evidence``
reads every evidence object and re-check after-photo back. Problems are named (``Tamper``): truncation, a
rewritten chain, rows changed outside the app, swapped evidence.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy import func, inspect, select
from sqlalchemy.orm import Session

from urbaneye.audit import (
    COVERED,
    COVERED_BY_TABLE,
    GENESIS_HASH,
    ROW_OPS,
    HeadLine,
    RowOp,
    head_file_for,
    mac_key,
    primary_key_of,
    read_head_lines,
    row_fields,
    row_hash,
    row_mac,
)
from urbaneye.audit_checkpoints import Checkpoint, checkpoint_key, latest_stored_checkpoint
from urbaneye.db.models import AuditCheckpoint, AuditLog, Evidence
from urbaneye.db.rechecks import CaseRecheck
from urbaneye.storage import EvidenceNotFound, EvidenceStoreUnavailable
from vision.digest import sha256_hex

log = logging.getLogger(__name__)


class Tamper(StrEnum):
    """What ``urbaneye audit verify`` names."""

    TRUNCATED = "TRUNCATED"  # rows cut off the end (or out of the middle)
    REWRITTEN = "REWRITTEN"  # content or MAC does not match: rewritten, hashes recomputed or not
    CHANGED_OUTSIDE_APP = "CHANGED_OUTSIDE_APP"  # a covered row differs from what the chain recorded
    EVIDENCE_SWAPPED = "EVIDENCE_SWAPPED"  # an evidence row's SHA-256 (and its object) replaced
    ANCHOR = "ANCHOR"  # a head-file line or checkpoint forged, missing or unreadable


@dataclass(frozen=True)
class ChainProblem:
    audit_id: int
    problem: str

    def __str__(self) -> str:
        return f"audit_log id={self.audit_id}: {self.problem}"


@dataclass(frozen=True)
class IntegrityProblem:
    """A tamper found by comparing the database with the chain or with an anchor outside it."""

    tamper: Tamper
    where: str
    problem: str

    def __str__(self) -> str:
        return f"{self.tamper.value} {self.where}: {self.problem}"


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


@dataclass
class ChainWalk:
    """What one pass over the table learns: rows, problems, the head and each covered row's last entry.

    ``last_entry``: (table, row id) -> (audit id, action, recorded fields); ``hashes``: audit id -> hash
    of the ids asked for (head-file lines).
    """

    rows: int = 0
    head_id: int = 0
    head_hash: str = GENESIS_HASH
    problems: list[ChainProblem] = field(default_factory=list)
    last_entry: dict[tuple[str, str], tuple[int, str, dict[str, Any]]] = field(default_factory=dict)
    hashes: dict[int, str] = field(default_factory=dict)


def walk_chain(session: Session, want_hashes: set[int] | None = None) -> ChainWalk:
    """Walk the table in id order: links, hashes and MACs; note each covered row's last ``row_*`` entry."""
    walk = ChainWalk()
    prev = GENESIS_HASH
    key = mac_key()
    bad_macs: list[int] = []
    for row in _iter_rows(session):
        walk.rows += 1
        if row.prev_hash != prev:
            walk.problems.append(
                ChainProblem(
                    row.id, "prev_hash does not match the previous row (a row was deleted or inserted)"
                )
            )
        if row_hash(row.prev_hash, row) != row.hash:
            walk.problems.append(ChainProblem(row.id, "content does not match its hash (row was altered)"))
        elif row.mac is None or not hmac.compare_digest(row_mac(row.hash, key.decode()), row.mac):
            bad_macs.append(row.id)
        if row.action in ROW_OPS and row.entity in COVERED_BY_TABLE:
            walk.last_entry[(row.entity, row.entity_id)] = (
                row.id,
                row.action,
                (row.detail or {}).get("fields", {}),
            )
        if want_hashes and row.id in want_hashes:
            walk.hashes[row.id] = row.hash
        prev = row.hash
        walk.head_id, walk.head_hash = row.id, row.hash
    if bad_macs:
        later = f" and {len(bad_macs) - 1} later row(s)" if len(bad_macs) > 1 else ""
        walk.problems.append(
            ChainProblem(
                bad_macs[0],
                f"REWRITTEN: its MAC does not match{later}: the row was rewritten and the hashes after it "
                "recomputed, or written by someone without the audit key (settings.audit_key)",
            )
        )
    return walk


def verify_chain(session: Session) -> tuple[int, list[ChainProblem]]:
    """Walk the chain. Returns (rows checked, problems); no problems means intact."""
    walk = walk_chain(session)
    return walk.rows, walk.problems


def verify_head_file(
    walk: ChainWalk, lines: list[HeadLine], bad_lines: list[int], path: Path
) -> list[IntegrityProblem]:
    """The table against this machine's head file: every anchored row must still be there, unchanged."""
    out: list[IntegrityProblem] = []
    where = f"head file {path}"
    key = mac_key().decode()
    for no in bad_lines:
        out.append(IntegrityProblem(Tamper.ANCHOR, where, f"line {no} is malformed (torn write or edited)"))
    genuine = [h for h in lines if hmac.compare_digest(row_mac(h.row_hash, key), h.mac)]
    for h in lines:
        if h not in genuine:
            out.append(IntegrityProblem(Tamper.ANCHOR, where, f"line {h.line_no} has a wrong MAC (forged)"))
    if not genuine:
        return out
    newest = max(genuine, key=lambda h: h.row_id)
    if walk.head_id < newest.row_id:
        out.append(
            IntegrityProblem(
                Tamper.TRUNCATED,
                "audit_log",
                f"the table ends at id={walk.head_id} but the head file anchored id={newest.row_id} "
                f"(hash {newest.row_hash[:12]}…) after its commit: the most recent rows were deleted",
            )
        )
    for h in genuine:
        have = walk.hashes.get(h.row_id)
        if h.row_id > walk.head_id:
            continue  # reported above as truncation
        if have is None:
            out.append(
                IntegrityProblem(
                    Tamper.TRUNCATED, f"audit_log id={h.row_id}", "anchored in the head file but deleted"
                )
            )
        elif have != h.row_hash:
            out.append(
                IntegrityProblem(
                    Tamper.REWRITTEN,
                    f"audit_log id={h.row_id}",
                    "its hash differs from the one anchored in the head file: the chain was rewritten",
                )
            )
    return out


def verify_checkpoint(session: Session, walk: ChainWalk, store) -> list[IntegrityProblem]:  # noqa: ANN001
    """The table against the newest signed checkpoint in the object store."""
    table_seq = session.scalar(select(func.max(AuditCheckpoint.seq))) or 0
    try:
        seq = latest_stored_checkpoint(store, table_seq)
        if seq == 0:
            return []
        cp = Checkpoint.from_json(store.get(checkpoint_key(seq)))
    except (EvidenceStoreUnavailable, EvidenceNotFound, ValueError, KeyError) as exc:
        return [IntegrityProblem(Tamper.ANCHOR, "checkpoints", f"cannot read them from the store: {exc}")]
    where = f"checkpoint {seq} ({checkpoint_key(seq)})"
    out: list[IntegrityProblem] = []
    if not cp.valid():
        return [IntegrityProblem(Tamper.ANCHOR, where, "its signature does not match: forged or another key")]
    if seq < table_seq:
        out.append(
            IntegrityProblem(
                Tamper.ANCHOR, where, f"the table lists checkpoint {table_seq}, the store has not"
            )
        )
    row = session.execute(select(AuditLog.hash).where(AuditLog.id == cp.head_id)).scalar()
    rows = session.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.id <= cp.head_id)) or 0
    if row is None:
        out.append(
            IntegrityProblem(
                Tamper.TRUNCATED,
                f"audit_log id={cp.head_id}",
                f"the head signed in {where} at {cp.at} is gone: rows were deleted (the table ends at id={walk.head_id})",
            )
        )
    elif row != cp.head_hash:
        out.append(
            IntegrityProblem(
                Tamper.REWRITTEN,
                f"audit_log id={cp.head_id}",
                f"its hash differs from the one signed in {where}",
            )
        )
    if row is not None and rows != cp.rows:
        out.append(
            IntegrityProblem(
                Tamper.TRUNCATED,
                "audit_log",
                f"{rows} rows up to id={cp.head_id}, {where} signed {cp.rows}: rows were deleted from the middle",
            )
        )
    return out


def verify_state(session: Session, walk: ChainWalk) -> list[IntegrityProblem]:
    """Every covered row against its last chained entry: changed, added or deleted behind the app's back."""
    out: list[IntegrityProblem] = []
    seen: set[tuple[str, str]] = set()
    for cls, cols in COVERED.items():
        table = cls.__tablename__
        pk = [c.key for c in inspect(cls).primary_key]
        columns = [getattr(cls, c) for c in dict.fromkeys([*pk, *cols])]
        for values in session.execute(select(*columns)).mappings():
            ident = (table, primary_key_of(cls, values))
            seen.add(ident)
            where = f"{table} id={ident[1]}"
            entry = walk.last_entry.get(ident)
            if entry is None:
                out.append(
                    IntegrityProblem(
                        Tamper.CHANGED_OUTSIDE_APP, where, "not in the audit log: written outside the app"
                    )
                )
                continue
            audit_id, action, recorded = entry
            if action == RowOp.DELETE:
                out.append(
                    IntegrityProblem(
                        Tamper.CHANGED_OUTSIDE_APP,
                        where,
                        f"deleted per audit_log id={audit_id} but present again",
                    )
                )
                continue
            now = row_fields(cls, dict(values))
            diffs = {c: (recorded.get(c), now[c]) for c in cols if recorded.get(c) != now[c]}
            if not diffs:
                continue
            if cls is Evidence and "sha256" in diffs:
                old, new = diffs["sha256"]
                out.append(
                    IntegrityProblem(
                        Tamper.EVIDENCE_SWAPPED,
                        f"{where} key={values['key']}",
                        f"sha256 is {new} but audit_log id={audit_id} recorded {old}: the evidence row (and "
                        "its object) was replaced outside the app",
                    )
                )
                continue
            text_diffs = ", ".join(f"{c} is {new!r} (audit log: {old!r})" for c, (old, new) in diffs.items())
            out.append(
                IntegrityProblem(
                    Tamper.CHANGED_OUTSIDE_APP,
                    where,
                    f"{text_diffs} since audit_log id={audit_id}: changed outside the app",
                )
            )
    for ident, (audit_id, action, _) in walk.last_entry.items():
        if ident not in seen and action != RowOp.DELETE:
            out.append(
                IntegrityProblem(
                    Tamper.CHANGED_OUTSIDE_APP,
                    f"{ident[0]} id={ident[1]}",
                    f"deleted outside the app (last recorded in audit_log id={audit_id}, no delete chained)",
                )
            )
    return out


@dataclass
class Verification:
    rows: int
    problems: list[ChainProblem | IntegrityProblem]
    #: each head file checked, with how many of its lines (anchors)
    head_files: list[tuple[Path, int]]


def verify_all(session: Session, store=None, head_files: list[Path] | None = None) -> Verification:  # noqa: ANN001
    """Chain, head file(s), newest checkpoint (when ``store`` is given) and covered rows; see ``Tamper``.

    ``head_files``: default this machine's for the session's database; pass each machine's to check all.
    """
    read = {path: read_head_lines(path) for path in (head_files or [head_file_for(session)])}
    walk = walk_chain(session, want_hashes={h.row_id for lines, _ in read.values() for h in lines})
    problems: list[ChainProblem | IntegrityProblem] = list(walk.problems)
    for path, (lines, bad) in read.items():
        problems += verify_head_file(walk, lines, bad, path)
    if store is not None:
        problems += verify_checkpoint(session, walk, store)
    problems += verify_state(session, walk)
    return Verification(walk.rows, problems, [(path, len(lines)) for path, (lines, _) in read.items()])


@dataclass(frozen=True)
class EvidenceProblem:
    #: which row holds the hash: ``evidence id=5`` or ``recheck id=…`` (a re-check's after-photo)
    ref: str
    case_id: str
    key: str
    problem: str

    def __str__(self) -> str:
        return f"{self.ref} case={self.case_id} key={self.key}: {self.problem}"


def _read_back(store, ref: str, case_id: str, key: str, sha256: str) -> EvidenceProblem | None:  # noqa: ANN001
    """The object under ``key`` against ``sha256``: None when they agree, else what is wrong."""
    try:
        actual = sha256_hex(store.get(key))
    except EvidenceNotFound:
        return EvidenceProblem(ref, case_id, key, "object is missing from the store")
    except EvidenceStoreUnavailable as exc:
        return EvidenceProblem(ref, case_id, key, f"store unreachable: {exc}")
    if actual != sha256:
        return EvidenceProblem(ref, case_id, key, f"sha256 {actual} != recorded {sha256} (object altered)")
    return None


def verify_evidence(session: Session, store) -> tuple[int, list[EvidenceProblem]]:  # noqa: ANN001 - EvidenceStore
    """Read every uploaded evidence object and every re-check after-photo back; compare each SHA-256 with
    the database (and an after-photo's row with the audit event that chained its hashes)."""
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
            if (problem := _read_back(store, f"evidence id={e.id}", e.case_id, e.key, e.sha256)) is not None:
                problems.append(problem)
        last_id = rows[-1].id
    photos, photo_problems = verify_recheck_photos(session, store)
    return count + photos, problems + photo_problems


def _chained_recheck_photos(session: Session) -> dict[str, tuple[int, dict[str, str]]]:
    """recheck id → (audit_log id, after-photo key/sha256 fields) as ``recheck`` case events chained them."""
    chained: dict[str, tuple[int, dict[str, str]]] = {}
    for audit_id, detail in session.execute(
        select(AuditLog.id, AuditLog.detail)
        .where(AuditLog.entity == "case", AuditLog.action == "recheck")
        .order_by(AuditLog.id)
    ):
        fields = {k: str(v) for k, v in (detail or {}).items() if k.startswith("after_")}
        chained[str((detail or {}).get("recheck_id", ""))] = (audit_id, fields)
    return chained


def verify_recheck_photos(session: Session, store) -> tuple[int, list[EvidenceProblem]]:  # noqa: ANN001
    """Each stored re-check after-photo (clean and annotated) read back against its row's SHA-256, and the
    row's keys and hashes against the ``recheck`` audit event that chained them (a row rewritten together
    with its object is ``EVIDENCE_SWAPPED``)."""
    chained = _chained_recheck_photos(session)
    problems: list[EvidenceProblem] = []
    count = 0
    rows = session.scalars(
        select(CaseRecheck)
        .where(CaseRecheck.clean_key != "")
        .order_by(CaseRecheck.requested_at, CaseRecheck.id)
    ).all()
    for row in rows:
        ref = f"recheck id={row.id}"
        audit_id, fields = chained.get(row.id, (None, {}))
        for variant, key, sha in (
            ("clean", row.clean_key, row.clean_sha256),
            ("annotated", row.annotated_key, row.annotated_sha256),
        ):
            if not key:
                continue
            count += 1
            if audit_id is None:
                problems.append(
                    EvidenceProblem(
                        ref,
                        row.case_id,
                        key,
                        f"{Tamper.CHANGED_OUTSIDE_APP}: the after-photo has no recheck event in the audit chain",
                    )
                )
            elif (fields.get(f"after_{variant}_key"), fields.get(f"after_{variant}_sha256")) != (key, sha):
                problems.append(
                    EvidenceProblem(
                        ref,
                        row.case_id,
                        key,
                        f"{Tamper.EVIDENCE_SWAPPED}: {variant} after-photo sha256 is {sha} but audit_log "
                        f"id={audit_id} recorded {fields.get(f'after_{variant}_sha256')} under key "
                        f"{fields.get(f'after_{variant}_key')}",
                    )
                )
            if (problem := _read_back(store, ref, row.case_id, key, sha)) is not None:
                problems.append(problem)
    return count, problems
