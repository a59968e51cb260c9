"""Evidence uploads of recorded cases: from the spool to the evidence store, outside any case transaction.

``upload_spooled_evidence`` uploads what a spool item's case still misses and retires the item when all of
it is in the store; ``EvidenceUploader`` does that in a background thread of this process (one per spool
and database: ``evidence_uploader``), retrying deferred items when the store's circuit lets a probe through.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from dataclasses import dataclass
from enum import StrEnum

from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy import select

from urbaneye.cases.spool import Spool, SpooledFrame, SpoolItemNotFound
from urbaneye.db.models import Case, Evidence
from urbaneye.db.session import session_scope
from urbaneye.settings import get_settings
from urbaneye.storage import EvidenceStore, EvidenceStoreUnavailable, get_store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _PendingUpload:
    """An evidence row not in the store yet, and the spooled frame with its bytes."""

    evidence_id: int
    key: str
    sha256: str
    frame: SpooledFrame


class UploadOutcome(StrEnum):
    DONE = "done"  # every evidence object of the item is in the store; the spool item is retired
    DEFERRED = "evidence_pending"  # the store is down or refused: the bytes wait in the spool
    BUSY = "uploading"  # another thread or process of this machine is uploading this item now
    ALREADY_DONE = "already_done"


def upload_spooled_evidence(
    spool_item_id: str, *, spool: Spool, store: EvidenceStore | None = None, url: str | None = None
) -> UploadOutcome:
    """Upload the evidence of a recorded spool item that is not in the store yet; retire the item when
    all of it is. Runs outside any case transaction, so a slow store never holds a case row back.

    After the first failure the remaining objects are deferred at once (the store's circuit breaker
    then fails further calls without touching the network until its next probe).
    """
    if spool.is_done(spool_item_id):
        spool.mark_done(spool_item_id)
        return UploadOutcome.ALREADY_DONE
    store = store or get_store()
    with spool.upload_lock(spool_item_id) as mine:
        if not mine:
            return UploadOutcome.ALREADY_DONE if spool.is_done(spool_item_id) else UploadOutcome.BUSY
        item = spool.load(spool_item_id)
        frames = {(f.seq, f.variant): f for f in item.frames}
        with session_scope(url or get_settings().db_url) as session:
            case = session.execute(
                select(Case).where(Case.violation_id == item.event.violation_id)
            ).scalar_one()
            todo = [
                _PendingUpload(e.id, e.key, e.sha256, frames[(e.seq, e.variant)])
                for e in case.evidence
                if (e.seq, e.variant) in frames and not e.uploaded
            ]
            case_id, violation_id = case.id, case.violation_id
        uploaded: list[int] = []
        deferred = False
        for upload in todo:
            frame, key = upload.frame, upload.key
            data = frame.read()
            try:
                digest = store.put(
                    key,
                    data,
                    "image/jpeg",
                    {
                        "case-id": case_id,
                        "violation-id": violation_id,
                        "seq": frame.seq,
                        "variant": frame.variant,
                    },
                )
            except SoftTimeLimitExceeded:
                raise  # the task's time is up: Celery must see it
            except EvidenceStoreUnavailable as exc:
                log.warning("evidence %s waits in the spool: %s", key, exc)
                deferred = True
                break  # the rest is deferred at once
            except Exception:  # a refused upload must not cost the case: the spool keeps the bytes
                log.exception("evidence %s upload refused; it waits in the spool", key)
                deferred = True
                continue
            if digest != upload.sha256:  # audit verify names it too
                log.error("evidence %s in the store differs from the hash its case recorded", key)
            uploaded.append(upload.evidence_id)
        if uploaded:
            with session_scope(url or get_settings().db_url) as session:
                # ORM updates, not a bulk UPDATE: session events see each evidence row change
                for row in session.scalars(select(Evidence).where(Evidence.id.in_(uploaded))):
                    row.uploaded = True
        if deferred:
            return UploadOutcome.DEFERRED
        spool.mark_done(spool_item_id)
        return UploadOutcome.DONE


class EvidenceUploader:
    """Uploads spooled evidence in one background thread of this process, off the case task's path.

    Items the store could not take are retried by the uploader itself as soon as the store's circuit
    breaker lets a probe through (oldest first; the first one that fails stops the round), so uploads
    resume without a restart; the relay's re-send is the fallback if this process dies.
    """

    def __init__(self, spool: Spool, url: str) -> None:
        self.spool = spool
        self.url = url
        self._jobs: queue.Queue[str] = queue.Queue()
        self._deferred: dict[str, None] = {}  # insertion-ordered set, oldest first
        self._held_at = 0.0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="evidence-uploader", daemon=True)
        self._thread.start()

    def submit(self, spool_item_id: str) -> None:
        self._jobs.put(spool_item_id)

    def stop(self, timeout_s: float = 10.0) -> bool:
        """Finish the upload in hand and end the thread; what waits stays in the spool (the relay re-sends
        it). Returns whether the thread ended within ``timeout_s``."""
        self._stopping.set()
        self._jobs.put(_STOP)
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _attempt(self, spool_item_id: str) -> UploadOutcome:
        try:
            outcome = upload_spooled_evidence(spool_item_id, spool=self.spool, url=self.url)
        except SpoolItemNotFound:
            outcome = UploadOutcome.ALREADY_DONE
        except Exception:  # database down, ...: keep the item; the next round (or the relay) retries
            log.exception("evidence upload of spool item %s failed; retrying later", spool_item_id)
            outcome = UploadOutcome.DEFERRED
        if outcome == UploadOutcome.DEFERRED:
            self._deferred[spool_item_id] = None
        else:
            self._deferred.pop(spool_item_id, None)
        return outcome

    def _hold_deferred(self) -> None:
        """Refresh the ``sent`` markers of the items this live process retries, so the relay does not
        re-send them (re-recording every waiting case each round of a long outage); if this process dies,
        the markers age and the relay takes over."""
        now = time.monotonic()
        if now - self._held_at < 1.0:
            return
        self._held_at = now
        for spool_item_id in self._deferred:
            if self.spool.exists(spool_item_id):
                self.spool.mark_sent(spool_item_id)

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._hold_deferred()
            # wake at the next probe, and at least every 5 s to hold the deferred items
            wait_s = min(5.0, max(0.2, get_store().available_in_s())) if self._deferred else None
            try:
                job = self._jobs.get(timeout=wait_s)
            except queue.Empty:
                job = None
            if job is _STOP or self._stopping.is_set():
                return
            if job is not None:
                self._attempt(job)
                continue
            for spool_item_id in list(self._deferred):  # the store may be back: oldest first
                if self._stopping.is_set() or self._attempt(spool_item_id) == UploadOutcome.DEFERRED:
                    break


_STOP = "\0stop"  # wakes a waiting uploader to end (never a spool item id)


_uploaders: dict[tuple[int, str, str], EvidenceUploader] = {}
_uploaders_lock = threading.Lock()


def evidence_uploader(spool: Spool, url: str) -> EvidenceUploader:
    """This process's uploader for a spool and database (a forked child makes its own)."""
    key = (os.getpid(), str(spool.root), url)
    with _uploaders_lock:
        if key not in _uploaders:
            _uploaders[key] = EvidenceUploader(spool, url)
        return _uploaders[key]


def stop_uploaders(timeout_s: float = 10.0) -> None:
    """End this process's uploader threads (a worker shutting down, a test's stack torn down); the next
    ``evidence_uploader`` call starts a fresh one. Items they still held wait in the spool for the relay."""
    with _uploaders_lock:
        stopping = [u for (pid, _, _), u in _uploaders.items() if pid == os.getpid()]
        _uploaders.clear()
    for uploader in stopping:
        if not uploader.stop(timeout_s):
            log.warning("evidence uploader of %s did not stop within %.0f s", uploader.spool.root, timeout_s)
