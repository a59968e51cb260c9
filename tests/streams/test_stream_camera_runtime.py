"""One config per camera in a worker: immutable versions swapped whole, readers keep what they took."""

from __future__ import annotations

import pytest

from streams.camera_runtime import ConfigVersion, WorkerCameras, is_live
from streams.events import EvidenceKeeper
from tests.streams.conftest import camera_dict
from vision.config import CameraConfig, parse_cameras


def _camera(camera_id: str = "cam-1", **extra: object) -> CameraConfig:
    return parse_cameras({"cameras": [camera_dict(camera_id, "clip.mp4", **extra)]}).cameras[0]


@pytest.mark.parametrize(
    ("timelines", "expected_timeline"),
    [
        ((False,), 1),
        ((True,), 2),
        ((True, False), 2),  # a second edit before the next frame: the new timeline is not lost
        ((False, True, False), 2),
        ((True, True), 3),
    ],
)
def test_config_version_counts_edits_and_new_timelines(
    timelines: tuple[bool, ...], expected_timeline: int
) -> None:
    first = version = ConfigVersion(_camera())
    for i, new_timeline in enumerate(timelines):
        version = version.next(_camera(detect_fps=i + 1), new_timeline=new_timeline)
    assert version.number == 1 + len(timelines)
    assert version.timeline == expected_timeline
    assert version.camera.detect_fps == len(timelines)  # the newest config wins
    assert first == ConfigVersion(_camera())  # versions are values: the one a reader took never changes


def test_worker_cameras_swap_the_whole_mapping_and_tell_the_keeper_first() -> None:
    told: list[CameraConfig] = []
    cameras = WorkerCameras([_camera("cam-1"), _camera("cam-2")], on_put=told.append)
    before = cameras.current
    edited = _camera("cam-1", detect_fps=2)
    cameras.put(edited)
    cameras.remove("cam-2")
    assert dict(cameras.current) == {"cam-1": edited}
    assert sorted(before) == ["cam-1", "cam-2"] and before["cam-1"].detect_fps == 5  # a reader's copy holds
    assert told == [edited]
    with pytest.raises(TypeError):
        cameras.current["cam-3"] = edited  # type: ignore[index]  # read-only to every reader


def test_evidence_keeper_takes_a_new_config_without_changing_the_callers_map() -> None:
    given = {"cam-1": _camera("cam-1")}
    keeper = EvidenceKeeper(given, handoff=None)  # type: ignore[arg-type]  # handle is not called here
    edited = _camera("cam-1", name="改名")
    keeper.set_camera(edited)
    assert keeper.cameras["cam-1"] is edited
    assert given["cam-1"].name == "测试 cam-1"


def test_is_live_means_epoch_seconds() -> None:
    assert not is_live(_camera())  # a file with a start time plays video time
    assert is_live(_camera(start_time=None))
    assert is_live(_camera(source={"url": "rtsp://cam.example/1"}))
