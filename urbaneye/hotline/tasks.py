"""Celery tasks of the hotline queue. Bodies are single calls to plain functions."""

from __future__ import annotations

from sqlalchemy.exc import OperationalError

from urbaneye.celery_app import Queue, app
from urbaneye.hotline.delivery import deliver_outbox
from urbaneye.settings import get_settings

_limit_s = get_settings().task_time_limit_s


@app.task(
    name="urbaneye.hotline.deliver_outbox",
    queue=Queue.HOTLINE.value,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(OperationalError,),  # database blip; HTTP failures are recorded in the outbox row
    max_retries=5,
    retry_backoff=True,
    retry_backoff_max=60,
    soft_time_limit=_limit_s,
    time_limit=_limit_s + 10,
)
def deliver_outbox_task(outbox_id: int) -> str:
    return deliver_outbox(int(outbox_id))
