"""Celery tasks of the retraining loop, all on ``Queue.TRAINING`` (GPU workers where there are).

Tasks take ids and small options, reload state from the database and call one plain function
(``run_retraining`` / ``build_dataset``); what they produced lives in the registry tables, not in the
result backend. Run the training queue with one process per GPU: ``celery -A urbaneye.celery_app worker
-Q training -c 1``. Redis: set ``URBANEYE_BROKER_VISIBILITY_TIMEOUT_S`` above the longest training time, or
a redelivered task waits on the group lock and exits ``busy``.

Scheduled retraining: ``beat_schedule()`` adds one hourly check, ``models.retrain_if_due``, which starts a
retraining of a camera group when ``min_new_verdicts`` verdicts arrived since its last dataset, or when a
week passed since then and there is at least one new verdict.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from celery.schedules import crontab
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from datasets.builder import BuildOptions, build_dataset
from models.retrain import RetrainBusy, RetrainOptions, run_retraining
from urbaneye import registry
from urbaneye.celery_app import Queue, app
from urbaneye.db.models import ActiveModel, Camera, Case, ModelVersion, Review
from urbaneye.db.session import session_scope
from urbaneye.settings import get_settings
from vision.config import ModelConfig
from vision.detector import OnnxDetector

log = logging.getLogger(__name__)

#: A long fine-tune on CPU takes hours; the hard limit only stops runaways.
TRAIN_TIME_LIMIT_S = 12 * 3600
DEFAULT_MIN_NEW_VERDICTS = 200
DEFAULT_MAX_AGE_DAYS = 7.0


@app.task(
    name="models.retrain",
    queue=Queue.TRAINING.value,
    acks_late=True,
    max_retries=0,
    time_limit=TRAIN_TIME_LIMIT_S + 300,
    soft_time_limit=TRAIN_TIME_LIMIT_S,
)
def retrain_task(
    camera_group: str = "default",
    dataset_version: str | None = None,
    recipe: str = "finetune",
    epochs: int | None = None,
    promote: bool = True,
) -> dict[str, Any]:
    """Fine-tune the group's active model on its reviewed cases; result recorded in the registry."""
    options = RetrainOptions(
        camera_group=camera_group,
        dataset_version=dataset_version,
        recipe=recipe,
        epochs=epochs,
        promote=promote,
    )
    try:
        return run_retraining(options).to_json()
    except RetrainBusy as exc:
        log.info("%s", exc)
        return {"status": "busy", "camera_group": camera_group}


@app.task(
    name="models.build_dataset", queue=Queue.TRAINING.value, acks_late=True, max_retries=0, time_limit=3600
)
def build_dataset_task(camera_group: str | None = None, synth_share: float = 0.5) -> dict[str, Any]:
    """Build and register a dataset version from reviewed cases (pseudo-labels by the active model)."""
    settings = get_settings()
    with session_scope() as s:
        active = registry.active_version(s, camera_group or "default")
        detector = None
        if active is not None:
            path = registry.fetch_onnx(active.onnx_uri, active.sha256, settings)
            detector = OnnxDetector(path, ModelConfig(default_score_threshold=0.25))
        result = build_dataset(
            s, options=BuildOptions(camera_group=camera_group, synth_share=synth_share), detector=detector
        )
        return {"version": result.version, "counts": result.counts, "manifest_uri": result.manifest_uri}


def due_groups(
    session: Session,
    now: dt.datetime,
    min_new_verdicts: int = DEFAULT_MIN_NEW_VERDICTS,
    max_age_days: float = DEFAULT_MAX_AGE_DAYS,
) -> dict[str, str]:
    """``{camera_group: why}`` for the groups whose retraining is due at ``now``.

    "Since the last training" = since the group's newest model version was created (or ever, if none).
    """
    groups = {g for (g,) in session.execute(select(ActiveModel.camera_group))} or {"default"}
    due: dict[str, str] = {}
    for group in sorted(groups):
        last = session.scalar(
            select(func.max(ModelVersion.created_at)).where(ModelVersion.camera_group == group)
        )
        cameras = select(Camera.id).where(Camera.group == group)
        q = select(func.count()).select_from(Review).join(Case, Case.id == Review.case_id)
        q = q.where(Review.decision.in_(("confirm", "reject")))
        if group == "default":
            q = q.where(Case.camera_id.in_(cameras) | Case.camera_id.not_in(select(Camera.id)))
        else:
            q = q.where(Case.camera_id.in_(cameras))
        if last is not None:
            q = q.where(Review.created_at > last)
        n = int(session.scalar(q) or 0)
        if n >= min_new_verdicts:
            due[group] = f"{n} new verdicts >= {min_new_verdicts}"
        elif n and last is not None:
            last_aware = last if last.tzinfo else last.replace(tzinfo=dt.UTC)
            if (now - last_aware).total_seconds() >= max_age_days * 86400:
                due[group] = (
                    f"{n} new verdicts and last training {last_aware:%Y-%m-%d} is over {max_age_days:g} days old"
                )
    return due


@app.task(
    name="models.retrain_if_due", queue=Queue.TRAINING.value, acks_late=True, max_retries=0, time_limit=300
)
def retrain_if_due_task(
    min_new_verdicts: int = DEFAULT_MIN_NEW_VERDICTS, max_age_days: float = DEFAULT_MAX_AGE_DAYS
) -> dict[str, str]:
    """Start ``models.retrain`` for every camera group that is due; returns ``{group: why}``."""
    with session_scope() as s:
        due = due_groups(s, dt.datetime.now(dt.UTC), min_new_verdicts, max_age_days)
    for group, why in due.items():
        log.info("retraining camera group %s: %s", group, why)
        retrain_task.apply_async(kwargs={"camera_group": group}, queue=Queue.TRAINING.value)
    return due


def beat_schedule(
    min_new_verdicts: int = DEFAULT_MIN_NEW_VERDICTS, max_age_days: float = DEFAULT_MAX_AGE_DAYS
) -> dict[str, dict[str, Any]]:
    """Entries for ``app.conf.beat_schedule``: an hourly due-check (weekly / after N verdicts)."""
    return {
        "urbaneye-retrain-if-due": {
            "task": "models.retrain_if_due",
            "schedule": crontab(minute=17),  # hourly, off the top of the hour
            "kwargs": {"min_new_verdicts": min_new_verdicts, "max_age_days": max_age_days},
            "options": {"queue": Queue.TRAINING.value},
        }
    }


# Celery imports this module (``TASK_MODULES``) when a worker or beat starts, before beat builds its
# scheduler: the retraining check registers itself here, so ``urbaneye.celery_app`` never imports models/.
app.conf.beat_schedule = {**(app.conf.beat_schedule or {}), **beat_schedule()}
