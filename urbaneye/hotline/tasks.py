"""Celery tasks of the hotline queue. Bodies are single calls to plain functions."""

from __future__ import annotations

from urbaneye.celery_app import Queue, app, durable_task_options
from urbaneye.hotline.delivery import deliver_outbox


# HTTP failures are not retried here: the outbox row records them and backs off
@app.task(name="urbaneye.hotline.deliver_outbox", **durable_task_options(Queue.HOTLINE))
def deliver_outbox_task(outbox_id: int) -> str:
    return deliver_outbox(int(outbox_id))
