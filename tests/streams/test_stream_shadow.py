"""Registry models in the per-camera loop: the active model makes cases, a shadow model only counts."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Callable
from pathlib import Path

from streams.camera import CameraProcessor
from streams.capture import SampledFrame, Sampler
from streams.sources import VideoSource
from streams.worker import DetectorPool, record_shadow_opened
from tests.streams.conftest import GARBAGE_BOX, camera_dict
from tests.streams.helpers import box_painter, write_clip
from vision.config import SourceConfig, load_cameras


def test_shadow_model_counts_would_be_cases_beside_the_active_one(
    settings_env: Callable[..., object], tmp_path: Path, oracle_model: Path, cameras_yaml: Callable[..., Path]
) -> None:
    from urbaneye.db.migrate import upgrade
    from urbaneye.db.session import session_factory
    from urbaneye.registry import promote, register, set_shadow, shadow_summary

    settings = settings_env(database_url="", evidence_backend="fs", models_dir=tmp_path / "models")
    upgrade(settings.db_url)
    sessions = session_factory(settings.db_url)
    shadow_file = tmp_path / "shadow.onnx"
    shutil.copyfile(oracle_model, shadow_file)
    with sessions() as session:
        register(session, onnx_path=oracle_model, version="default-active", settings=settings)
        register(session, onnx_path=shadow_file, version="default-shadow", settings=settings)
        promote(session, "default-active", "default")
        set_shadow(session, "default", "default-shadow", cameras=["cam-1"])
        session.commit()

    clip = write_clip(tmp_path / "g.mp4", seconds=20, fps=5, paint=box_painter(GARBAGE_BOX, 0.5, 16.0))
    cameras_file = load_cameras(cameras_yaml(camera_dict("cam-1", str(clip), garbage_dwell_s=5)))
    camera = cameras_file.camera("cam-1")
    pool = DetectorPool(cameras_file, session_factory=sessions)  # follows the registry (hot reload)
    shadow_seen: list[str] = []

    def on_shadow(version: str, event: object) -> None:
        shadow_seen.append(version)
        record_shadow_opened(sessions, version, event)

    processor = CameraProcessor(
        camera,
        cameras_file.rules,
        pool.source("default"),
        shadow=pool.shadow_source("default", "cam-1"),
        on_shadow_opened=on_shadow,
    )
    src = VideoSource(SourceConfig(url=str(clip)))
    src.open()
    sampler, events, n = Sampler(camera.detect_fps), [], 0
    while src.grab():
        ts = src.position_s()
        if sampler.due(ts):
            frame = SampledFrame("cam-1", src.retrieve(), ts, False, dt.datetime.now(dt.UTC), 0.0, n, n == 0)
            events += processor.process(frame).events
            n += 1
    src.close()
    pool.stop()

    assert pool.source("default")()[1] == "default-active"
    assert [e.event for e in events if e.event != "sighting"] == ["opened", "closed"]
    assert shadow_seen == ["default-shadow"]
    with sessions() as session:
        assert shadow_summary(session, "default-shadow") == {"cam-1": {"exposed_garbage": 1}}
        assert shadow_summary(session, "default-active") == {}
    assert pool.shadow_source("default", "cam-2")() is None  # the shadow runs only where it was set
