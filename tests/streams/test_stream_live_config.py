"""A running worker follows camera and zone edits made in the database (the API's zone editor writes there).

Real components throughout: SQLite and PostgreSQL, the worker stack as ``urbaneye stream-worker`` builds it
(seeding, hand-off spool, in-process Celery, case service), file sources played at 5x their rate, and an
ONNX oracle detector that sees the white piles drawn in the clips.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.run import WorkerOptions, WorkerStack
from streams.status import BOARD
from tests.streams.conftest import GARBAGE_BOX
from tests.streams.helpers import OracleAnchor, box_painter, build_oracle_model, write_clip
from tests.waiting import wait_for

BOX_A = GARBAGE_BOX  # inside zone z1
BOX_B = (245, 100, 300, 160)  # inside zone z2 only
POLL_S = 0.3
SPEED = 5.0


def zone(zone_id: str, x1: float, x2: float) -> dict[str, Any]:
    return {
        "id": zone_id,
        "kind": "monitored",
        "polygon": [[x1, 0.3], [x2, 0.3], [x2, 0.85], [x1, 0.85]],
        "dwell_s": {"exposed_garbage": 5},
    }


Z1 = zone("z1", 0.3, 0.7)
Z2 = zone("z2", 0.72, 0.98)
#: a bow tie: the zone editor's validation refuses it, a hand-edited row can still hold it
BAD_ZONE = {**zone("bad", 0.1, 0.2), "polygon": [[0.1, 0.1], [0.3, 0.3], [0.3, 0.1], [0.1, 0.2]]}


@pytest.fixture(scope="module")
def two_pile_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("models") / "two-piles.onnx"
    return build_oracle_model(path, [OracleAnchor(BOX_A, "garbage"), OracleAnchor(BOX_B, "garbage")])


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    from urbaneye.db.migrate import upgrade

    url = (
        request.getfixturevalue("pg_url")
        if request.param == "postgres"
        else f"sqlite:///{tmp_path / 'ue.db'}"
    )
    upgrade(url)
    return url


@pytest.fixture
def embedded(settings_env: Callable[..., Any], db_url: str) -> Any:
    return settings_env(database_url=db_url, broker_url="memory://", evidence_backend="fs", metrics_port=0)


def cameras_file(tmp_path: Path, model: Path, *cameras: dict[str, Any]) -> Path:
    doc = {
        "version": 1,
        "model": {"path": str(model)},
        # one update a day at most: the test counts opened/closed, not progress reports
        "rules": {"grace_s": 3, "reopen_cooldown_s": 0, "update_interval_s": 3600},
        "cameras": list(cameras),
    }
    path = tmp_path / "cameras.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


def camera(camera_id: str, clip: Path, *zones: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": camera_id,
        "source": {"url": str(clip), "loop": True},
        "detect_fps": 5,
        "start_time": "2025-06-01T10:00:00+08:00",
        "zones": list(zones),
    }


@contextlib.contextmanager
def running(cameras: Path, model: Path) -> Iterator[WorkerStack]:
    options = WorkerOptions(cameras_path=cameras, model_path=str(model), config_poll_s=POLL_S, speed=SPEED)
    stack = WorkerStack(options).start()
    stop = threading.Event()
    supervisor = threading.Thread(target=stack.run_until, args=(stop,), daemon=True)
    supervisor.start()
    try:
        yield stack
    finally:
        stop.set()
        supervisor.join(5)
        stack.stop()


def cases(url: str) -> dict[str, list[tuple[str, bool]]]:
    """zone id → [(violation id, ended)] of camera cam-1's cases."""
    from urbaneye.db.models import Case
    from urbaneye.db.session import session_scope

    out: dict[str, list[tuple[str, bool]]] = {}
    with session_scope(url) as session:
        for case in session.query(Case).filter_by(camera_id="cam-1").order_by(Case.created_at):
            out.setdefault(case.zone_id, []).append((case.violation_id, case.ended_at is not None))
    return out


def status_of(url: str, camera_id: str) -> tuple[str, str] | None:
    """(state, error) of the camera's ``camera_status`` row, as the API reads it; None without a row."""
    from urbaneye.db.models import CameraStatus
    from urbaneye.db.session import session_scope

    with session_scope(url) as session:
        row = session.get(CameraStatus, camera_id)
        return None if row is None else (row.state, row.error)


@contextlib.contextmanager
def edit(url: str) -> Iterator[Any]:
    """A session on the tables, committed at the end: what the API's handlers do."""
    from urbaneye.db.session import session_scope

    with session_scope(url) as session:
        yield session
        session.commit()


def test_zone_edits_in_the_database_reach_the_running_worker(
    embedded: Any, db_url: str, tmp_path: Path, two_pile_model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from urbaneye.db.models import Camera, Zone
    from vision.config import ZoneConfig

    caplog.set_level(logging.INFO)
    both = [box_painter(BOX_A, 0), box_painter(BOX_B, 0)]
    clip = write_clip(tmp_path / "piles.mp4", seconds=4, fps=10, paint=lambda f, t: [p(f, t) for p in both])
    with running(cameras_file(tmp_path, two_pile_model, camera("cam-1", clip, Z1)), two_pile_model) as stack:
        worker = stack.worker
        wait_for(lambda: cases(db_url).get("z1"), 30, "the pile in z1 becomes a case")
        reconnects = BOARD.get("cam-1").reconnects
        applied = worker.config_changes_applied

        with edit(db_url) as session:  # the zone editor adds z2; someone hand-wrote a broken row
            session.add(
                Zone(
                    camera_id="cam-1",
                    zone_id="z2",
                    config=ZoneConfig.model_validate(Z2).model_dump(mode="json"),
                )
            )
            session.add(Zone(camera_id="cam-1", zone_id="bad", config=BAD_ZONE))
        committed_at = time.monotonic()
        wait_for(lambda: worker.config_changes_applied > applied, 10, "the new zone picked up")
        pickup_s = time.monotonic() - committed_at
        assert [z.id for z in worker.cameras["cam-1"].zones] == ["z1", "z2"]
        wait_for(lambda: cases(db_url).get("z2"), 30, "the pile in the new zone z2 becomes a case")
        # z1's violation was open all along: same violation id, still open, no second case
        now = cases(db_url)
        assert len(now["z1"]) == 1 and now["z1"][0][1] is False
        assert "bad" not in now
        assert "camera 'cam-1' zone 'bad' skipped: zone 'bad' polygon self-intersects" in caplog.text
        assert "zone 'bad' skipped" in BOARD.get("cam-1").error  # shown with the camera's status
        assert BOARD.get("cam-1").reconnects == reconnects  # zones changed without a reconnect

        z2_id = now["z2"][0][0]
        with edit(db_url) as session:  # the zone editor deletes z2
            session.query(Zone).filter_by(camera_id="cam-1", zone_id="z2").delete()
        wait_for(lambda: cases(db_url)["z2"] == [(z2_id, True)], 10, "z2's case closed when z2 was deleted")
        assert cases(db_url)["z1"] == now["z1"]  # untouched

        with edit(db_url) as session:  # an admin disables the camera
            session.get(Camera, "cam-1").enabled = False
        # the runtime goes first, the board entry right after: wait for both
        wait_for(
            lambda: worker.running_cameras == [] and BOARD.get("cam-1") is None,
            10,
            "the disabled camera stops",
        )
        # What the API shows for it: the worker writes this row after it stops the camera, so wait for it.
        wait_for(
            lambda: status_of(db_url, "cam-1") == ("offline", "disabled in the database"),
            10,
            "the disabled camera's status row says why",
        )
    print(f"\nzone pick-up after the commit: {pickup_s:.2f} s (poll every {POLL_S} s)")


def test_source_rate_and_camera_set_follow_the_database(
    settings_env: Callable[..., Any], tmp_path: Path, two_pile_model: Path
) -> None:
    from urbaneye.db.migrate import upgrade
    from urbaneye.db.models import Camera
    from vision.config import CameraConfig

    url = f"sqlite:///{tmp_path / 'ue.db'}"
    upgrade(url)
    settings_env(database_url=url, broker_url="memory://", evidence_backend="fs", metrics_port=0)
    empty = write_clip(tmp_path / "empty.mp4", seconds=4, fps=10)
    pile = write_clip(tmp_path / "pile.mp4", seconds=4, fps=10, paint=box_painter(BOX_A, 0))

    def set_config(camera_id: str, **changes: Any) -> None:
        with edit(url) as session:
            row = session.get(Camera, camera_id)
            row.config = {**row.config, **changes}

    def sampled_per_frame(camera_id: str, frames_in: int) -> float:
        """Sampled (processed + dropped) per decoded frame over the next ``frames_in`` frames."""
        a = BOARD.get(camera_id)
        wait_for(lambda: BOARD.get(camera_id).frames_in >= a.frames_in + frames_in, 30, "frames decoded")
        b = BOARD.get(camera_id)
        sampled = b.frames_processed + b.dropped_frames - a.frames_processed - a.dropped_frames
        return sampled / (b.frames_in - a.frames_in)

    with running(cameras_file(tmp_path, two_pile_model, camera("cam-1", empty, Z1)), two_pile_model) as stack:
        worker = stack.worker
        wait_for(lambda: BOARD.get("cam-1") and BOARD.get("cam-1").frames_processed > 5, 20, "cam-1 running")
        assert sampled_per_frame("cam-1", 60) == pytest.approx(0.5, abs=0.1)  # 5 of 10 fps

        set_config("cam-1", detect_fps=2)
        wait_for(lambda: worker.cameras["cam-1"].detect_fps == 2, 10, "new detect rate picked up")
        sampled_per_frame("cam-1", 10)  # frames sampled before the change are behind us
        assert sampled_per_frame("cam-1", 100) == pytest.approx(0.2, abs=0.07)

        # a new source URL: the worker reconnects to it; the pile there becomes a case in z1
        set_config("cam-1", source={"url": str(pile), "loop": True}, detect_fps=5)
        wait_for(lambda: cases(url).get("z1"), 30, "a case from the new source")

        # a camera created through the API starts; disabling and re-enabling stops and restarts it
        cam2 = CameraConfig.model_validate(camera("cam-2", empty, Z1))
        with edit(url) as session:
            session.add(
                Camera(
                    id="cam-2",
                    name="",
                    group="default",
                    enabled=True,
                    config=cam2.model_dump(mode="json", exclude={"zones"}),
                )
            )
        wait_for(lambda: "cam-2" in worker.running_cameras, 10, "the new camera starts")
        wait_for(lambda: BOARD.get("cam-2").frames_processed > 0, 20, "the new camera processes frames")
        with edit(url) as session:
            session.get(Camera, "cam-2").enabled = False
        wait_for(lambda: worker.running_cameras == ["cam-1"], 10, "cam-2 stops")
        with edit(url) as session:
            session.get(Camera, "cam-2").enabled = True
        wait_for(lambda: worker.running_cameras == ["cam-1", "cam-2"], 10, "cam-2 starts again")
        with edit(url) as session:
            session.delete(session.get(Camera, "cam-2"))
        wait_for(lambda: worker.running_cameras == ["cam-1"], 10, "a deleted camera stops")
