"""Stream worker -> cases hand-off: spool first (fsync, atomic rename), then a Celery task with the id.

The task goes to this machine's own queue ``cases.<node>`` (``URBANEYE_NODE_NAME``, default the host
name), which only this machine's ``cases`` worker consumes: the evidence bytes stay in the local spool,
so no other machine could upload them (see docs/streams.md, "Deployment for N machines").

``Handoff.submit`` never raises for a broker, database or S3 outage. If the task cannot be sent, the item
waits in the spool and the relay (``Handoff.relay_once`` / ``start_relay``, or ``urbaneye relay``)
sends it when the broker is back. Case creation is idempotent on the violation id, so a re-send never
makes a second case.

An item is the ``ViolationEvent``, its ``CaseContext`` (camera name, zone name, location, time zone,
model version, wall-clock event time: default now, ...) and its ``EvidenceFrame``s.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
from pathlib import Path

from urbaneye.cases.spool import CaseContext, EvidenceFrame, Spool, make_item_id
from urbaneye.cases.tasks import send_case_task
from urbaneye.celery_app import node_name
from urbaneye.hotline.relay import dispatch_due_outbox
from urbaneye.settings import get_settings
from urbaneye.storage import VARIANTS
from vision.types import PUBLIC_EVENT_KINDS, EventKind, ViolationEvent

__all__ = ["CaseContext", "EvidenceFrame", "EvidenceRuleError", "Handoff", "verify_evidence_frames"]

log = logging.getLogger(__name__)


class EvidenceRuleError(ValueError):
    """An ``opened`` event came without the two evidence moments the rule requires."""


def verify_evidence_frames(
    event: ViolationEvent, frames: list[EvidenceFrame], min_gap_s: float = 10.0
) -> None:
    """Stationary violations need >= 2 frames >= ``min_gap_s`` apart (first sighting + dwell crossing).

    Only the legal moments count (seq below ``STRIP_SEQ_BASE``): frame-strip frames span the dwell too,
    but they are downscaled review aids and never stand in for a missing first sighting; they must be
    ``annotated`` (nothing else may take them as a full-resolution clean frame).
    """
    for f in frames:
        if f.variant not in VARIANTS:
            raise EvidenceRuleError(f"evidence frame variant {f.variant!r} is not one of {VARIANTS}")
        if not f.jpeg:
            raise EvidenceRuleError(f"evidence frame {f.seq}-{f.variant} of {event.violation_id} is empty")
        if f.strip and f.variant != "annotated":
            raise EvidenceRuleError(
                f"frame-strip frame {f.seq}-{f.variant} of {event.violation_id} must be 'annotated'"
            )
    if event.event != EventKind.OPENED:
        return
    legal = [f for f in frames if not f.strip]
    times = sorted({f.frame_ts for f in legal if f.frame_ts is not None})
    if len({f.seq for f in legal}) < 2 or not times or (times[-1] - times[0]).total_seconds() < min_gap_s:
        raise EvidenceRuleError(
            f"violation {event.violation_id}: an 'opened' event needs evidence frames from >= 2 moments "
            f">= {min_gap_s:g}s apart (seq 1 = first sighting, seq 2 = dwell crossing; frame-strip frames "
            f"do not count); got "
            f"{sorted({(f.seq, f.frame_ts.isoformat() if f.frame_ts else None) for f in legal})}"
        )


class Handoff:
    def __init__(
        self, spool_dir: Path | None = None, *, min_evidence_gap_s: float = 10.0, node: str | None = None
    ) -> None:
        self.spool = Spool(spool_dir or get_settings().spool_dir)
        self.min_evidence_gap_s = min_evidence_gap_s
        self.node = node or node_name()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def submit(self, event: ViolationEvent, frames: list[EvidenceFrame], context: CaseContext) -> str:
        """Spool the event and its frames durably, then send a task with the spool item id.

        Returns the spool item id. Raises ``EvidenceRuleError``/``ValueError`` only for a malformed
        event (a programming error), never for an outage.
        """
        if event.event not in PUBLIC_EVENT_KINDS:
            names = tuple(str(k) for k in PUBLIC_EVENT_KINDS)
            raise ValueError(f"event '{event.event}' of {event.violation_id} is not one of {names}")
        verify_evidence_frames(event, frames, self.min_evidence_gap_s)
        if context.event_time is None:
            context = dataclasses.replace(context, event_time=dt.datetime.now(dt.UTC))
        item_id = make_item_id(event.violation_id, event.event, event.ts_s)
        # The send is claimed before the item appears in the spool, so a relay round between the write
        # and our send does not send it a second time (the task would upload the evidence twice).
        created = self.spool.write(item_id, event, context, frames, claim_send=True)
        if created and not self._send(item_id):
            self.spool.release_send(item_id)  # the relay's next round sends it
        return item_id

    def _send(self, item_id: str) -> bool:
        try:
            send_case_task(item_id, self.node)
        except Exception as exc:  # broker down, DNS, auth ...: the spool keeps it, the relay re-sends
            log.warning("case task for %s not sent (%s); it waits in the spool for the relay", item_id, exc)
            return False
        return True

    def relay_once(self, resend_after_s: float | None = None) -> int:
        """Send tasks for spooled items never sent or not turned into cases in time, to this machine's
        queue (an item whose task went astray, e.g. to another machine, comes back here). Returns sends
        made."""
        after = get_settings().spool_resend_after_s if resend_after_s is None else resend_after_s
        sent = 0
        for item_id in self.spool.due_for_send(after):
            self.spool.mark_sent(item_id)  # before the send: an eager task may retire the item at once
            if not self._send(item_id):
                self.spool.release_send(item_id)
                break  # broker still down: try again next round
            sent += 1
        return sent

    def start_relay(self, interval_s: float | None = None, outbox: bool | None = None) -> threading.Thread:
        """Run the spool relay (and, if ``outbox``, the hotline outbox relay) in a daemon thread.

        ``outbox=None`` relays the outbox too in embedded mode (memory:// broker: no ``urbaneye relay``
        service runs there); in production the ``relay`` service does it.
        """
        s = get_settings()
        interval = s.relay_interval_s if interval_s is None else interval_s
        if outbox is None:
            outbox = s.broker_url.startswith("memory://")

        def loop() -> None:
            while not self._stop.wait(interval):
                try:
                    self.relay_once()
                    if outbox:
                        dispatch_due_outbox()
                except Exception:  # keep relaying: the next round retries
                    log.exception("relay round failed")

        self._thread = threading.Thread(target=loop, name="handoff-relay", daemon=True)
        self._thread.start()
        return self._thread

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
