"""The cameras/zones tables as workers use them: seeding (file vs database), cheap versions, loading."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from urbaneye import cameras_repo
from urbaneye.cameras_repo import CameraRegistry
from vision.config import CamerasFile, parse_cameras


def zone(zone_id: str, x1: float = 0.3, x2: float = 0.7) -> dict[str, Any]:
    return {"id": zone_id, "kind": "monitored", "polygon": [[x1, 0.3], [x2, 0.3], [x2, 0.8], [x1, 0.8]]}


def cameras(*specs: tuple[str, list[dict[str, Any]]]) -> CamerasFile:
    return parse_cameras(
        {
            "cameras": [
                {"id": cid, "source": {"url": f"rtsp://cam/{cid}"}, "zones": zones} for cid, zones in specs
            ]
        }
    )


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    from urbaneye.db.migrate import upgrade

    url = (
        request.getfixturevalue("pg_url") if request.param == "postgres" else f"sqlite:///{tmp_path / 'c.db'}"
    )
    upgrade(url)
    return request.param, url


@pytest.fixture
def registry(db: tuple[str, str]) -> CameraRegistry:
    from urbaneye.db.session import session_factory

    return CameraRegistry(session_factory(db[1]))


def test_the_file_seeds_new_cameras_and_the_database_wins_afterwards(registry: CameraRegistry) -> None:
    from urbaneye.db.models import Camera, Zone

    file = cameras(("cam-1", [zone("z1")]), ("cam-2", [zone("z1")]))
    assert registry.seed(file).inserted == ["cam-1", "cam-2"]
    with registry.sessions() as session:  # an admin edits in the UI
        session.get(Camera, "cam-2").enabled = False
        row = session.query(Zone).filter_by(camera_id="cam-1", zone_id="z1").one()
        row.config = {**row.config, "polygon": zone("z1", 0.1, 0.5)["polygon"]}
        session.add(Zone(camera_id="cam-1", zone_id="z2", config=zone("z2", 0.6, 0.9)))
        session.commit()
    edited = registry.load(["cam-1", "cam-2"])

    report = registry.seed(
        cameras(*[(c.id, [z.model_dump() for z in c.zones]) for c in file.cameras], ("cam-3", []))
    )
    assert (report.inserted, report.kept, report.overwritten) == (["cam-3"], ["cam-1", "cam-2"], [])
    assert registry.load(["cam-1", "cam-2"]) == edited  # a restart keeps the UI's edits
    assert [z.id for z in edited["cam-1"].config.zones] == ["z1", "z2"]
    assert list(edited["cam-1"].config.zones[0].polygon[0]) == [0.1, 0.3]
    assert edited["cam-2"].config.enabled is False

    report = registry.seed(file, file_wins=True)  # --cameras-file-wins
    assert report.overwritten == ["cam-1", "cam-2"]
    loaded = registry.load(["cam-1", "cam-2", "cam-3"])
    assert [loaded[c.id].config for c in file.cameras] == file.cameras  # zones included: z2 is gone
    assert "cam-3" in loaded  # the database's own cameras are not deleted by the file

    versions = registry.versions(zones_of=["cam-1", "cam-2"])
    registry.seed(file, file_wins=True)  # nothing differs: nothing is written, no worker reloads
    assert registry.versions(zones_of=["cam-1", "cam-2"]) == versions


@pytest.mark.parametrize("filter_max", [200, 0], ids=["zones-by-camera", "zones-table-scan"])
def test_versions_move_on_every_edit_of_a_watched_camera(
    registry: CameraRegistry, filter_max: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from urbaneye.db.models import Camera, Zone

    monkeypatch.setattr(cameras_repo, "ZONE_FILTER_MAX", filter_max)  # many watched cameras: one scan

    registry.seed(cameras(("cam-1", [zone("z1")]), ("cam-2", [zone("z1")])))
    seen = [registry.versions(zones_of=["cam-1"])]
    assert registry.versions(zones_of=["cam-1"]) == seen[0]  # polling alone changes nothing
    assert seen[0]["cam-2"][2] is None  # zones of cameras this worker does not run are not read

    def edit(change: Any) -> dict[str, Any]:
        with registry.sessions() as session:
            change(session)
            session.commit()
        seen.append(registry.versions(zones_of=["cam-1"]))
        return seen[-1]

    def zone_row(session: Any, zone_id: str) -> Any:
        return session.query(Zone).filter_by(camera_id="cam-1", zone_id=zone_id).one()

    edit(lambda s: s.add(Zone(camera_id="cam-1", zone_id="z2", config=zone("z2", 0.1, 0.2))))
    edit(lambda s: setattr(zone_row(s, "z2"), "config", zone("z2", 0.1, 0.25)))
    edit(lambda s: s.delete(zone_row(s, "z2")))
    edit(
        lambda s: setattr(
            s.get(Camera, "cam-1"), "config", {**s.get(Camera, "cam-1").config, "detect_fps": 2}
        )
    )
    after = edit(lambda s: setattr(s.get(Camera, "cam-1"), "enabled", False))
    cam1 = [v["cam-1"] for v in seen]
    # each edit moves the version (adding then deleting z2 does come back to the first one: same rows)
    assert all(a != b for a, b in zip(cam1, cam1[1:], strict=False)), cam1
    assert {v["cam-2"] for v in seen} == {seen[0]["cam-2"]}
    assert after["cam-1"][1] is False


def test_bad_rows_are_skipped_with_a_message_naming_camera_zone_and_fix(
    db: tuple[str, str], registry: CameraRegistry
) -> None:
    from sqlalchemy import text

    from urbaneye.db.models import Camera, Zone

    registry.seed(cameras(("cam-1", [zone("z1")]), ("cam-2", [])))
    bow_tie = {**zone("tie"), "polygon": [[0.1, 0.1], [0.3, 0.3], [0.3, 0.1], [0.1, 0.2]]}
    with registry.sessions() as session:
        session.add(Zone(camera_id="cam-1", zone_id="tie", config=bow_tie))
        session.add(Zone(camera_id="cam-1", zone_id="list", config=[1, 2]))
        session.add(Zone(camera_id="cam-1", zone_id="unknown", config={**zone("unknown"), "colour": "red"}))
        session.add(Zone(camera_id="cam-1", zone_id="raw", config={}))
        cam2 = session.get(Camera, "cam-2")
        cam2.config = {**cam2.config, "detect_fps": 0}
        session.commit()
        if db[0] == "sqlite":  # PostgreSQL's json type refuses broken text; SQLite stores anything
            session.execute(text("UPDATE zones SET config = '{\"id\": \"raw\", oops' WHERE zone_id = 'raw'"))
            session.commit()

    loaded = registry.load(["cam-1", "cam-2"])
    cam1 = loaded["cam-1"]
    assert [z.id for z in cam1.config.zones] == ["z1"]  # the good zone still runs
    problems = "\n".join(cam1.problems)
    fix = "fix it in the zone editor (PUT /api/v1/cameras/cam-1/zones/"
    assert "camera 'cam-1' zone 'tie' skipped: zone 'tie' polygon self-intersects at point" in problems
    assert "camera 'cam-1' zone 'list' skipped: its config is list, not a JSON object" in problems
    assert "camera 'cam-1' zone 'unknown' skipped: colour: Extra inputs are not permitted" in problems
    if db[0] == "sqlite":
        assert "camera 'cam-1' zone 'raw' skipped: its config is not valid JSON" in problems
    else:
        assert "camera 'cam-1' zone 'raw' skipped: kind: Field required" in problems
    assert problems.count(fix) == 4
    assert loaded["cam-2"].config is None
    assert loaded["cam-2"].problems == (
        "camera 'cam-2': detect_fps: Input should be greater than 0; fix it with PUT /api/v1/cameras/cam-2",
    )
