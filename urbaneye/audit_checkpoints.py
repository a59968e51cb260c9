"""Signed checkpoints of the audit chain's head in the object store (object lock) and the log.

Every ``audit_checkpoint_interval_s`` the relay (and ``urbaneye run``) signs ``{seq, head id, head hash,
rows}`` with the audit key and writes it as ``audit/checkpoints/<seq>.json``: rows cut off the end of the
chain, even with the head file, are found against the newest checkpoint (``urbaneye.audit_verify``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import threading
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from urbaneye.audit import mac_key
from urbaneye.db.models import AuditCheckpoint, AuditLog
from urbaneye.db.session import session_factory

log = logging.getLogger(__name__)

#: Object-store folder of the signed checkpoints: ``audit/checkpoints/0000000001.json`` …
CHECKPOINT_PREFIX = "audit/checkpoints"


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
        sig = hmac.new(mac_key(key), self.body(), hashlib.sha256).hexdigest()
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
        try:
            with session_factory(self.url)() as session:
                return write_checkpoint(session, self.store)
        except Exception as exc:  # store or database down: the next round tries again
            log.warning("audit checkpoint not written (next try in %.0f s): %s", self.interval_s, exc)
            return None

    def stop(self) -> None:
        self._halt.set()
