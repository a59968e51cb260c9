"""Celery tasks of the cases queue. Bodies are single calls to plain functions."""

from __future__ import annotations

from sqlalchemy.exc import OperationalError

from urbaneye.cases.service import process_spool_item
from urbaneye.celery_app import Queue, app
from urbaneye.settings import get_settings

_limit_s = get_settings().task_time_limit_s


@app.task(
    name="urbaneye.cases.process_spool_item",
    queue=Queue.CASES.value,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(OperationalError,),  # database blip; S3 outages leave evidence in the spool instead
    max_retries=5,
    retry_backoff=True,
    retry_backoff_max=60,
    soft_time_limit=_limit_s,
    time_limit=_limit_s + 10,
)
def process_spool_item_task(spool_item_id: str) -> str:
    return process_spool_item(spool_item_id)
