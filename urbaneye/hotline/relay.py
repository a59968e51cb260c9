"""Outbox relay: turns due outbox rows into Celery tasks on the ``hotline`` queue.

A dispatched row is leased (``next_attempt_at`` pushed forward by ``lease_s``) so the relay does not send
it again while its task runs; if the task is lost (worker killed), the lease runs out and the row is sent
again. The delivery itself records success, back-off or dead-letter in the row.
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import select, update

from urbaneye.db.models import Outbox, OutboxStatus, utcnow
from urbaneye.db.session import session_scope
from urbaneye.hotline.tasks import deliver_outbox_task
from urbaneye.settings import get_settings

log = logging.getLogger(__name__)


def send_delivery_task(outbox_id: int) -> None:
    deliver_outbox_task.apply_async(args=[outbox_id], retry=False)


def dispatch_due_outbox(url: str | None = None, limit: int = 200) -> int:
    """Send a delivery task for each due pending row. Returns how many were sent."""
    s = get_settings()
    now = utcnow()
    lease = dt.timedelta(seconds=s.outbox_lease_s)
    with session_scope(url or get_settings().db_url) as session:
        stmt = (
            select(Outbox)
            .where(Outbox.status == OutboxStatus.PENDING, Outbox.next_attempt_at <= now)
            .order_by(Outbox.id)
            .limit(limit)
        )
        if session.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        rows = session.execute(stmt).scalars().all()
        ids = [r.id for r in rows]
        for r in rows:
            r.next_attempt_at = now + lease
    sent = 0
    for i, outbox_id in enumerate(ids):
        try:
            send_delivery_task(outbox_id)
        except Exception as exc:  # broker down: give the rest back so the next round tries again
            log.warning(
                "hotline delivery task not sent (%s); %d rows wait for the next round", exc, len(ids) - i
            )
            with session_scope(url or get_settings().db_url) as session:
                session.execute(update(Outbox).where(Outbox.id.in_(ids[i:])).values(next_attempt_at=now))
            break
        sent += 1
    return sent
