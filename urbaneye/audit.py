"""Audit chain: hash-chained, keyed and anchored outside the database.

Each row: ``hash = sha256(prev_hash + canonical(row))`` and ``mac = HMAC(settings.audit_key, hash)``.
The key never enters the database, so whoever can write the database can delete or rewrite rows but
cannot make the MACs of a rewritten chain match. Two anchors outside the database catch what a MAC
cannot, rows cut off the end:

* the **head file** (``<data_dir>/audit/head-<db>.log``): after every commit that appended audit rows,
  one line ``id hash mac`` is appended and fsync'd — the newest row is anchored the moment it exists;
* **signed checkpoints** of the head, written every ``audit_checkpoint_interval_s`` to the object store
  (object lock) and to the log (``write_checkpoint``).

Besides the explicit rows (who reviewed, pushed, promoted …), every insert, update and delete of the
covered tables (``COVERED``: cases, reviews, evidence with its SHA-256, users and roles, cameras, zones,
model versions and promotions) appends a ``row_*`` entry with the row's digest, from ORM events; so
``verify_state`` can tell a row changed behind the app's back (``UPDATE cases SET status='closed'``, an
evidence row and its object swapped) from one changed through it.

Appends are serialised so the chain never forks: on PostgreSQL a transaction-scoped advisory lock, on
SQLite a write lock taken before the chain head is read. ``urbaneye audit verify`` runs ``verify_all``.
"""

from __future__ import annotations

import collections
import datetime as dt
import hashlib
import hmac
import json
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy import event, func, insert, inspect, select, text
from sqlalchemy.orm import Session

from urbaneye.db.models import (
    ActiveModel,
    AuditCheckpoint,
    AuditLog,
    Camera,
    Case,
    Evidence,
    ModelVersion,
    Review,
    User,
    Zone,
)
from urbaneye.settings import get_settings

log = logging.getLogger(__name__)

GENESIS_HASH = "0" * 64
#: Arbitrary constant key of the PostgreSQL advisory lock that serialises chain appends.
_PG_LOCK_KEY = 0x75726261_6E657965 & 0x7FFFFFFFFFFFFFFF
#: Object-store folder of the signed checkpoints: ``audit/checkpoints/0000000001.json`` …
CHECKPOINT_PREFIX = "audit/checkpoints"
#: Head-file lines ``verify_head_file`` compares with the table (the newest; older ones are covered by
#: the chain links from there back).
HEAD_LINES_CHECKED = 1000

# session.info keys: this transaction's chain tail (hash of its last appended row), the head to anchor
# after commit (id, hash, mac), and the covered-row changes collected during a flush
_TAIL, _HEAD, _CHANGES = "audit_tail", "audit_head", "audit_row_changes"


# --------------------------------------------------------------------------------------------- rows
def _utc_iso(at: dt.datetime) -> str:
    # SQLite returns naive datetimes (stored as UTC); PostgreSQL returns aware ones. Same text either way.
    if at.tzinfo is not None:
        at = at.astimezone(dt.UTC).replace(tzinfo=None)
    return at.isoformat(timespec="microseconds")


def canonical(row: AuditLog) -> bytes:
    """The bytes a row's hash covers (everything except ``id``, ``prev_hash``, ``hash`` and ``mac``)."""
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


def _key(key: str | None = None) -> bytes:
    return (key if key is not None else get_settings().audit_key).encode()


def row_mac(row_hash_hex: str, key: str | None = None) -> str:
    """HMAC-SHA256 of a row's hash with the audit key (settings, never the database)."""
    return hmac.new(_key(key), row_hash_hex.encode(), hashlib.sha256).hexdigest()


def _lock_chain(session: Session) -> None:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
    elif dialect == "sqlite":
        # A write statement takes SQLite's RESERVED lock for the rest of the transaction, so no other
        # connection can append between our read of the head and our insert.
        session.execute(text("UPDATE audit_log SET id = id WHERE 0"))


def _add_row(
    session: Session,
    actor: str,
    action: str,
    entity: str,
    entity_id: str,
    from_status: str,
    to_status: str,
    detail: dict[str, Any] | None,
) -> int:
    """Insert one chained, MAC'd row now (a Core insert: safe inside flush events, and rows land in chain
    order whatever the unit of work would do with pending objects). Returns its id."""
    prev = session.info.get(_TAIL)
    if prev is None:
        _lock_chain(session)
        head = session.execute(select(AuditLog.hash).order_by(AuditLog.id.desc()).limit(1)).scalar()
        prev = head or GENESIS_HASH
    row = AuditLog(
        # Microsecond precision is what both databases store, so the hash survives the round trip.
        at=dt.datetime.now(dt.UTC),
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
    row.mac = row_mac(row.hash)
    columns = ("at", "actor", "action", "entity", "entity_id", "from_status", "to_status", "detail")
    values = {c: getattr(row, c) for c in (*columns, "prev_hash", "hash", "mac")}
    row_id = session.execute(insert(AuditLog).values(**values)).inserted_primary_key[0]
    session.info[_TAIL] = row.hash
    session.info[_HEAD] = (row_id, row.hash, row.mac)  # anchored in the head file after the commit
    return row_id


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
    session.flush()  # the changes it records first: their row_* entries come before it in the chain
    row_id = _add_row(session, actor, action, entity, entity_id, from_status, to_status, detail)
    return session.get(AuditLog, row_id)


# ------------------------------------------------------------------ covered tables (ORM events)
#: Columns whose every change is chained, per table. Secrets (password hashes, camera credentials in
#: ``config``) enter the log only as digests.
COVERED: dict[type, tuple[str, ...]] = {
    Case: ("violation_id", "camera_id", "zone_id", "kind", "status", "reject_reason", "reviewed_by", "route"),
    Review: ("case_id", "user_id", "decision", "reason", "note"),
    Evidence: ("case_id", "seq", "variant", "key", "sha256", "size_bytes"),
    User: ("username", "role", "is_active", "password_hash"),
    Camera: ("name", "group", "enabled", "config"),
    Zone: ("camera_id", "zone_id", "config"),
    ModelVersion: ("status", "camera_group", "sha256", "onnx_uri"),
    ActiveModel: ("version", "shadow_version", "shadow_cameras"),
}
_HIDDEN = {(User, "password_hash"), (Camera, "config"), (Zone, "config")}
_BY_TABLE = {cls.__tablename__: cls for cls in COVERED}


class RowOp(StrEnum):
    INSERT = "row_insert"
    UPDATE = "row_update"
    DELETE = "row_delete"
    BASELINE = "row_baseline"  # rows that existed when migration 0005 started the coverage


_ROW_OPS = frozenset(op.value for op in RowOp)


def _norm(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def row_fields(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """The covered columns as the audit log records them (secrets as ``sha256:`` digests)."""
    out = {}
    for col in COVERED[cls]:
        v = _norm(values.get(col))
        if (cls, col) in _HIDDEN and v is not None:
            v = "sha256:" + hashlib.sha256(json.dumps(v, sort_keys=True).encode()).hexdigest()
        out[col] = v
    return out


def _pk(cls: type, values: dict[str, Any]) -> str:
    return "/".join(str(values[c.key]) for c in inspect(cls).primary_key)


def _values(obj: object, *, pk_only: bool = False) -> dict[str, Any]:
    cls = type(obj)
    pk = [c.key for c in inspect(cls).primary_key]
    return {c: getattr(obj, c) for c in (pk if pk_only else {*COVERED[cls], *pk})}


def _collect(op: RowOp):  # noqa: ANN202 - mapper event handler factory
    def handler(_mapper, _connection, target) -> None:  # noqa: ANN001
        cls = type(target)
        if op is RowOp.UPDATE:
            state = inspect(target)
            if not any(state.attrs[c].history.has_changes() for c in COVERED[cls]):
                return  # e.g. evidence.uploaded, updated_at: not what the chain covers
        session = Session.object_session(target)
        if session is not None:
            values = _values(target, pk_only=op is RowOp.DELETE)  # a deleted row cannot be refreshed
            session.info.setdefault(_CHANGES, []).append((op, cls, values))

    return handler


for _cls in COVERED:
    event.listen(_cls, "after_insert", _collect(RowOp.INSERT))
    event.listen(_cls, "after_update", _collect(RowOp.UPDATE))
    event.listen(_cls, "after_delete", _collect(RowOp.DELETE))


def _row_entry(session: Session, op: RowOp, cls: type, values: dict[str, Any], actor: str) -> None:
    fields = row_fields(cls, values) if op is not RowOp.DELETE else {}
    status = str(fields.get("status") or "") if cls is Case else ""
    _add_row(session, actor, op.value, cls.__tablename__, _pk(cls, values), "", status, {"fields": fields})


@event.listens_for(Session, "after_flush")
def _chain_row_changes(session: Session, _ctx: object) -> None:
    # The ids are assigned now (after the flush); the entries are inserted at once, in chain order.
    changes = session.info.pop(_CHANGES, None)
    if not changes:
        return
    actor = str(session.info.get("audit_actor", "system:orm"))
    for op, cls, values in changes:
        _row_entry(session, op, cls, values, actor)


@event.listens_for(Session, "after_commit")
def _anchor_head(session: Session) -> None:
    head = session.info.pop(_HEAD, None)
    if head is not None:
        append_head_line(head_file_for(session), *head)


@event.listens_for(Session, "after_transaction_end")
def _forget(session: Session, transaction: object) -> None:
    # The outermost transaction ended (committed, rolled back or closed): the next one reads the head anew.
    if getattr(transaction, "parent", None) is None:
        for k in (_TAIL, _HEAD, _CHANGES):
            session.info.pop(k, None)


def baseline_covered_rows(session: Session) -> int:
    """Chain every existing row of the covered tables once (migration 0005), so ``verify_state`` can
    check rows written before the chain covered them. Reads only the covered columns. Returns rows."""
    n = 0
    for cls, cols in COVERED.items():
        pk = [c.key for c in inspect(cls).primary_key]
        columns = [getattr(cls, c) for c in dict.fromkeys([*pk, *cols])]
        for values in session.execute(select(*columns)).mappings():
            _row_entry(session, RowOp.BASELINE, cls, dict(values), "system:migration-0005")
            n += 1
    return n


# ------------------------------------------------------------------------------ head file
def _db_tag(session_or_url: Session | str) -> str:
    url = session_or_url if isinstance(session_or_url, str) else None
    if url is None:
        url = session_or_url.get_bind().url.render_as_string(hide_password=True)
    else:
        from sqlalchemy.engine import make_url

        url = make_url(url).render_as_string(hide_password=True)
    return hashlib.sha256(url.encode()).hexdigest()[:16]


def head_file_for(session_or_url: Session | str) -> Path:
    """This machine's head file of one database: ``<data_dir>/audit/head-<digest of its URL>.log``."""
    return get_settings().data_dir / "audit" / f"head-{_db_tag(session_or_url)}.log"


def append_head_line(path: Path, row_id: int, row_hash_hex: str, mac: str) -> None:
    """Append ``id hash mac`` and fsync; never raises (the commit it anchors has happened)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(fd, f"{row_id} {row_hash_hex} {mac}\n".encode())
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        log.error("audit head file %s not written (the newest audit rows are not anchored): %s", path, exc)


@dataclass(frozen=True)
class HeadLine:
    line_no: int
    row_id: int
    row_hash: str
    mac: str


def read_head_lines(path: Path, keep: int = HEAD_LINES_CHECKED) -> tuple[list[HeadLine], list[int]]:
    """The last ``keep`` well-formed lines, and the numbers of malformed ones (a torn last write)."""
    lines: collections.deque[HeadLine] = collections.deque(maxlen=keep)
    bad: list[int] = []
    if not path.exists():
        return [], []
    with path.open(encoding="ascii", errors="replace") as f:
        for no, raw in enumerate(f, 1):
            parts = raw.split()
            if len(parts) == 3 and parts[0].isdigit():
                lines.append(HeadLine(no, int(parts[0]), parts[1], parts[2]))
            else:
                bad.append(no)
    return list(lines), bad


# ------------------------------------------------------------------------------ checkpoints
@dataclass(frozen=True)
class Checkpoint:
    """The chain's head at one moment, signed with the audit key."""

    seq: int
    at: str
    head_id: int
    head_hash: str
    rows: int
    signature: str = ""

    def body(self) -> bytes:
        data = {"seq": self.seq, "at": self.at, "head_id": self.head_id, "head_hash": self.head_hash}
        return json.dumps({**data, "rows": self.rows}, sort_keys=True).encode()

    def signed(self, key: str | None = None) -> Checkpoint:
        sig = hmac.new(_key(key), self.body(), hashlib.sha256).hexdigest()
        return Checkpoint(self.seq, self.at, self.head_id, self.head_hash, self.rows, sig)

    def valid(self, key: str | None = None) -> bool:
        return hmac.compare_digest(self.signed(key).signature, self.signature)

    def to_json(self) -> bytes:
        return json.dumps({**json.loads(self.body()), "signature": self.signature}, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Checkpoint:
        d = json.loads(data)
        return cls(
            int(d["seq"]),
            str(d["at"]),
            int(d["head_id"]),
            str(d["head_hash"]),
            int(d["rows"]),
            str(d["signature"]),
        )


def checkpoint_key(seq: int) -> str:
    return f"{CHECKPOINT_PREFIX}/{seq:010d}.json"


def write_checkpoint(session: Session, store) -> Checkpoint | None:  # noqa: ANN001 - EvidenceStore
    """Sign the committed head and write it to the store (object lock), the table and the log.

    Takes no chain lock: a slow or hung store must never hold back audit appends. None when the head
    has not moved since the last checkpoint (or the chain is empty). Commits.
    """
    head = session.execute(select(AuditLog.id, AuditLog.hash).order_by(AuditLog.id.desc()).limit(1)).first()
    if head is None:
        return None
    last = session.scalars(select(AuditCheckpoint).order_by(AuditCheckpoint.seq.desc()).limit(1)).first()
    if last is not None and last.head_id == head.id:
        return None
    rows = session.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.id <= head.id)) or 0
    seq = (last.seq if last else 0) + 1
    at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    cp = Checkpoint(seq, at, head.id, head.hash, rows).signed()
    key = checkpoint_key(seq)
    store.put(key, cp.to_json(), content_type="application/json")
    session.add(
        AuditCheckpoint(
            seq=seq,
            head_id=cp.head_id,
            head_hash=cp.head_hash,
            rows=rows,
            signature=cp.signature,
            object_key=key,
        )
    )
    session.commit()
    log.info("audit checkpoint %s", cp.to_json().decode())
    return cp


def latest_stored_checkpoint(store, floor: int = 0) -> int:  # noqa: ANN001 - EvidenceStore
    """The highest checkpoint number in the store (0: none), found with O(log n) ``exists`` calls.

    Starts from ``floor`` (the table's newest) and gallops past it: checkpoints the table lost still count.
    """
    lo = floor if floor > 0 and store.exists(checkpoint_key(floor)) else 0
    step = 1
    while store.exists(checkpoint_key(lo + step)):
        lo, step = lo + step, step * 2
    hi = lo + step  # absent
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if store.exists(checkpoint_key(mid)) else (lo, mid)
    return lo


class CheckpointThread(threading.Thread):
    """Writes a checkpoint every ``interval_s`` (``urbaneye run``, ``urbaneye relay``); never raises."""

    def __init__(self, url: str, store, interval_s: float) -> None:  # noqa: ANN001 - EvidenceStore
        super().__init__(name="audit-checkpoints", daemon=True)
        self.url, self.store, self.interval_s = url, store, interval_s
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self.interval_s):
            self.once()

    def once(self) -> Checkpoint | None:
        from urbaneye.db.session import session_factory

        try:
            with session_factory(self.url)() as session:
                return write_checkpoint(session, self.store)
        except Exception as exc:  # store or database down: the next round tries again
            log.warning("audit checkpoint not written (next try in %.0f s): %s", self.interval_s, exc)
            return None

    def stop(self) -> None:
        self._halt.set()


# ------------------------------------------------------------------------------ verification
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
    key = _key()
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
        if row.action in _ROW_OPS and row.entity in _BY_TABLE:
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
    key = _key().decode()
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
    from urbaneye.storage import EvidenceNotFound, EvidenceStoreUnavailable

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
            ident = (table, _pk(cls, values))
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
    evidence_id: int
    case_id: str
    key: str
    problem: str

    def __str__(self) -> str:
        return f"evidence id={self.evidence_id} case={self.case_id} key={self.key}: {self.problem}"


def verify_evidence(session: Session, store) -> tuple[int, list[EvidenceProblem]]:  # noqa: ANN001 - EvidenceStore
    """Read every uploaded evidence object back and compare its SHA-256 with the database."""
    from urbaneye.storage import EvidenceNotFound, EvidenceStoreUnavailable
    from vision.digest import sha256_hex

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
