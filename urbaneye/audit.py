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
SQLite a write lock taken before the chain head is read. Checkpoints: ``urbaneye.audit_checkpoints``;
``urbaneye audit verify`` runs ``urbaneye.audit_verify.verify_all``.
"""

from __future__ import annotations

import collections
import datetime as dt
import hashlib
import hmac
import json
import logging
import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy import event, insert, inspect, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from urbaneye.db.locks import lock_for_transaction
from urbaneye.db.models import (
    ActiveModel,
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


def mac_key(key: str | None = None) -> bytes:
    """The audit key as bytes (default ``settings.audit_key``): keys the row MACs and signs checkpoints."""
    return (key if key is not None else get_settings().audit_key).encode()


def row_mac(row_hash_hex: str, key: str | None = None) -> str:
    """HMAC-SHA256 of a row's hash with the audit key (settings, never the database)."""
    return hmac.new(mac_key(key), row_hash_hex.encode(), hashlib.sha256).hexdigest()


def _lock_chain(session: Session) -> None:
    # no other connection appends between our read of the head and our insert
    lock_for_transaction(session, _PG_LOCK_KEY, "audit_log", "id")


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
COVERED_BY_TABLE = {cls.__tablename__: cls for cls in COVERED}


class RowOp(StrEnum):
    INSERT = "row_insert"
    UPDATE = "row_update"
    DELETE = "row_delete"
    BASELINE = "row_baseline"  # rows that existed when migration 0005 started the coverage


ROW_OPS = frozenset(op.value for op in RowOp)


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


def primary_key_of(cls: type, values: dict[str, Any]) -> str:
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
    _add_row(
        session,
        actor,
        op.value,
        cls.__tablename__,
        primary_key_of(cls, values),
        "",
        status,
        {"fields": fields},
    )


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
