"""Scheduling and locking of retraining runs."""

from __future__ import annotations

import datetime as dt

import pytest

from models.retrain import RetrainBusy, group_lock
from models.tasks import beat_schedule, due_groups
from tests.retrain.conftest import T0, add_case
from urbaneye import registry
from urbaneye.db.models import Review


def test_one_run_per_group(db):
    engine = db.kw["bind"]
    with group_lock(engine, "default"):
        with pytest.raises(RetrainBusy, match="already running"), group_lock(engine, "default"):
            pass
        with group_lock(engine, "night"):  # other groups are independent
            pass
    with group_lock(engine, "default"):  # released after the run
        pass


def test_due_after_n_verdicts_or_a_week(db, fs_store, tmp_path):
    onnx = tmp_path / "a.onnx"
    onnx.write_bytes(b"a")
    with db() as s:
        mv = registry.register(s, onnx_path=onnx, version="a")
        registry.promote(s, "a")
        mv.created_at = T0
        for i in range(3):
            c = add_case(s, fs_store, at=T0 + dt.timedelta(days=1), seed=i)
            s.add(Review(case_id=c.id, user_id="u", decision="confirm", created_at=T0 + dt.timedelta(days=1)))
        s.commit()
        soon = T0 + dt.timedelta(days=2)
        assert due_groups(s, soon, min_new_verdicts=3) == {"default": "3 new verdicts >= 3"}
        assert due_groups(s, soon, min_new_verdicts=4) == {}
        late = T0 + dt.timedelta(days=8)
        assert "over 7 days old" in due_groups(s, late, min_new_verdicts=4)["default"]


def test_beat_schedule_is_an_hourly_check_on_the_training_queue():
    entry = beat_schedule(min_new_verdicts=50)["urbaneye-retrain-if-due"]
    assert entry["task"] == "models.retrain_if_due"
    assert entry["options"] == {"queue": "training"} and entry["kwargs"]["min_new_verdicts"] == 50


def test_celery_beat_runs_the_due_check():
    """A beat scheduler built from the real app (as ``celery beat`` does after finalizing) has the entry."""
    from celery.beat import Scheduler

    from urbaneye.celery_app import app

    app.finalize(auto=True)
    scheduler = Scheduler(app=app, lazy=False)
    entry = scheduler.schedule["urbaneye-retrain-if-due"]
    assert entry.task == "models.retrain_if_due" and entry.options["queue"] == "training"
    assert entry.kwargs == beat_schedule()["urbaneye-retrain-if-due"]["kwargs"]
