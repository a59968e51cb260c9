"""Celery tasks of the cases queue. Bodies are single calls to plain functions."""

from __future__ import annotations

from urbaneye.cases.service import process_spool_item
from urbaneye.celery_app import Queue, app, durable_task_options


# S3 outages are not retried here: evidence waits in the spool and the relay re-sends
@app.task(name="urbaneye.cases.process_spool_item", **durable_task_options(Queue.CASES))
def process_spool_item_task(spool_item_id: str) -> str:
    return process_spool_item(spool_item_id)
