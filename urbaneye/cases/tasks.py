"""Celery tasks of the cases queue, and how to send them. Bodies are single calls to plain functions."""

from __future__ import annotations

import logging

from urbaneye.cases.service import process_spool_item
from urbaneye.celery_app import Queue, app, durable_task_options, node_cases_queue, node_name
from urbaneye.settings import get_settings

log = logging.getLogger(__name__)


# The task commits the case row, then hands S3 uploads to this process's uploader thread: a slow or hung
# store is never waited for here (a local evidence directory is written inline). ``node`` is the machine
# whose spool has the item (None: an older task, sent before per-machine queues).
@app.task(name="urbaneye.cases.process_spool_item", **durable_task_options(Queue.CASES))
def process_spool_item_task(spool_item_id: str, node: str | None = None) -> str:
    return process_here_or_reroute(spool_item_id, node)


def process_here_or_reroute(spool_item_id: str, node: str | None = None) -> str:
    """``process_spool_item`` here, or ``"rerouted"``: a task that reaches another machine than ``node``
    (the shared ``cases`` queue) is sent on to ``cases.<node>`` instead of failing there."""
    here = node_name()
    if node is not None and node != here:
        send_case_task(spool_item_id, node)
        log.info("spool item %s is on machine %s, not %s: sent to its queue", spool_item_id, node, here)
        return "rerouted"
    return process_spool_item(spool_item_id, node=node, background=get_settings().evidence_backend == "s3")


def send_case_task(item_id: str, node: str | None = None) -> None:
    """Send the case task for a spool item to the queue of the machine whose spool has it (``node``,
    default this one); raises if the broker does not take it."""
    node = node or node_name()
    # retry=False: a broker outage must fail fast here; the relay is the retry.
    process_spool_item_task.apply_async(args=[item_id, node], queue=node_cases_queue(node), retry=False)
