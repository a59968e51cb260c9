"""Celery tasks of the cases queue. Bodies are single calls to plain functions."""

from __future__ import annotations

from urbaneye.cases.service import process_spool_item
from urbaneye.celery_app import Queue, app, durable_task_options
from urbaneye.settings import get_settings


# The task commits the case row, then hands S3 uploads to this process's uploader thread: a slow or hung
# store is never waited for here (a local evidence directory is written inline). ``node`` is the machine
# whose spool has the item (None: an older task, sent before per-machine queues).
@app.task(name="urbaneye.cases.process_spool_item", **durable_task_options(Queue.CASES))
def process_spool_item_task(spool_item_id: str, node: str | None = None) -> str:
    return process_spool_item(spool_item_id, node=node, background=get_settings().evidence_backend == "s3")
