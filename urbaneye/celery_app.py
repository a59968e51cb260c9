"""The one Celery app and its queues. Task modules sit next to the code they drive."""

from __future__ import annotations

from enum import StrEnum

from celery import Celery
from kombu import Queue as KombuQueue

from urbaneye.settings import get_settings


class Queue(StrEnum):
    """Tasks are routed by kind of work so deployment maps queues to workers."""

    CASES = "cases"  # evidence upload + case creation
    HOTLINE = "hotline"  # outbox relay and deliveries
    TRAINING = "training"  # dataset build, fine-tune, evaluate (GPU workers where there are)
    DEFAULT = "default"


TASK_MODULES = [
    "urbaneye.cases.tasks",
    "urbaneye.hotline.tasks",
    "models.tasks",
]


def make_app() -> Celery:
    s = get_settings()
    app = Celery("urbaneye", broker=s.broker_url, backend=s.result_backend or None, include=TASK_MODULES)
    app.conf.update(
        task_queues=[KombuQueue(q.value) for q in Queue],
        task_default_queue=Queue.DEFAULT.value,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=not s.result_backend,
        broker_connection_retry_on_startup=True,
        # memory:// = embedded: run tasks in the caller's process (no separate worker needed)
        task_always_eager=s.broker_url.startswith("memory://"),
        task_eager_propagates=False,
        timezone="Asia/Shanghai",
    )
    return app


app = make_app()
