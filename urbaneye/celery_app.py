"""The one Celery app and its queues. Task modules sit next to the code they drive.

The app names its task modules in ``TASK_MODULES`` and never imports them: Celery imports them when a
worker or beat starts. The training area's module (``models.tasks``) adds its own periodic entries to
``app.conf.beat_schedule`` when it is imported, so the service core imports nothing of ``models/``.

Embedded mode (``URBANEYE_BROKER_URL=memory://``) runs tasks eagerly in the caller's process: one
machine, no Redis, no extra thread. A task that fails there leaves its spool item / outbox row pending
and the relay (``Handoff.start_relay`` or ``urbaneye relay``) runs it again, so nothing is lost.
"""

from __future__ import annotations

import importlib.util
import re
import socket
from enum import StrEnum

from celery import Celery
from celery.signals import celeryd_after_setup
from kombu import Queue as KombuQueue
from sqlalchemy.exc import OperationalError

from urbaneye.settings import Settings, get_settings


class Queue(StrEnum):
    """Tasks are routed by kind of work so deployment maps queues to workers."""

    CASES = "cases"  # evidence upload + case creation
    HOTLINE = "hotline"  # outbox relay and deliveries
    TRAINING = "training"  # dataset build, fine-tune, evaluate (GPU workers where there are)
    DEFAULT = "default"


#: Imported by Celery (``include``) when a worker or beat starts; listed by name so this module imports none.
TASK_MODULES = [
    "urbaneye.cases.tasks",
    "urbaneye.hotline.tasks",
    "models.tasks",
]


def _installed(module: str) -> bool:
    # An area not in this build (e.g. models/ without training extras) must not stop the worker.
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _conf(s: Settings) -> dict:
    embedded = s.broker_url.startswith("memory://")
    return {
        "broker_url": s.broker_url,
        "result_backend": s.result_backend or None,
        "task_queues": [KombuQueue(q.value) for q in Queue],
        "task_default_queue": Queue.DEFAULT.value,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        "task_ignore_result": not s.result_backend,
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": 3.0,
        # Redis: a task taken by a worker that died unacknowledged comes back after this long.
        # Publishing fails fast when the broker is down (the spool and the relay are the retry), instead of
        # kombu's default of several reconnect attempts inside the stream worker's loop.
        "broker_transport_options": {
            "visibility_timeout": s.broker_visibility_timeout_s,
            "max_retries": 1,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.2,
        },
        "task_time_limit": s.task_time_limit_s + 10,
        "task_soft_time_limit": s.task_time_limit_s,
        "task_always_eager": embedded,
        "task_eager_propagates": False,
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "timezone": "Asia/Shanghai",
    }


def durable_task_options(queue: Queue) -> dict:
    """Options shared by tasks whose state lives in the database (cases, hotline): ack after the work,
    redeliver if the worker dies, retry only database blips, bounded time."""
    limit_s = get_settings().task_time_limit_s
    return {
        "queue": queue.value,
        "acks_late": True,
        "reject_on_worker_lost": True,
        "autoretry_for": (OperationalError,),
        "max_retries": 5,
        "retry_backoff": True,
        "retry_backoff_max": 60,
        "soft_time_limit": limit_s,
        "time_limit": limit_s + 10,
    }


def make_app() -> Celery:
    s = get_settings()
    app = Celery("urbaneye", include=[m for m in TASK_MODULES if _installed(m)])
    app.conf.update(_conf(s))
    return app


def reconfigure(settings: Settings | None = None) -> Celery:
    """Re-read settings into the app (tests, CLI overrides); drops pooled broker connections."""
    forget_broker_pools(app)
    app.conf.update(_conf(settings or get_settings()))
    return app


def forget_broker_pools(celery_app: Celery) -> None:
    """Make the next publish of ``celery_app`` build new broker connection and producer pools.

    Adapter over Celery internals (``Celery._pool``, ``AMQP._producer_pool``; Celery 5.4-5.7): Celery has
    no public call for this and does the same itself after a fork (``Celery._after_fork``). The pools
    are dropped, not closed: kombu keeps producer pools in a process-wide registry, and a closed one
    would be handed out again ("Acquire on closed pool").
    """
    celery_app.amqp._producer_pool = None
    celery_app._pool = None


app = make_app()


def node_name(settings: Settings | None = None) -> str:
    """This machine's name for routing (``URBANEYE_NODE_NAME``, default the host name), queue-name safe."""
    raw = (settings or get_settings()).node_name or socket.gethostname()
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", raw)[:100] or "localhost"


def node_cases_queue(node: str) -> str:
    """The cases queue of one machine: only the worker that can read that machine's spool consumes it.

    Example:
        >>> node_cases_queue("stream-3")
        'cases.stream-3'
    """
    return f"{Queue.CASES.value}.{node}"


@celeryd_after_setup.connect
def _consume_own_cases_queue(sender: str, instance, **_: object) -> None:  # noqa: ANN001
    """A worker that takes ``cases`` also takes its own machine's ``cases.<node>`` (where its spool is)."""
    queues = instance.app.amqp.queues
    if Queue.CASES.value in queues.consume_from:
        queues.select_add(node_cases_queue(node_name()))
