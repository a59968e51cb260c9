"""The hand-off spool: complete items only, idempotent ids, re-send schedule, done markers."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import time
from pathlib import Path

import pytest

from tests.urbaneye.conftest import make_context, make_event
from urbaneye.cases.spool import (
    CaseContext,
    EvidenceFrame,
    Spool,
    SpooledFrame,
    SpoolItemNotFound,
    check_item_id,
    make_item_id,
)
from vision.config import LocationConfig
from vision.types import Escalation, EventKind, ViolationKind

T = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)
FIXTURES = Path(__file__).parent / "fixtures"


def test_write_load_and_idempotent_ids(tmp_path):
    spool = Spool(tmp_path)
    item_id = make_item_id("cam-1:z1/7", "opened", 400.0)
    assert item_id == make_item_id("cam-1:z1/7", "opened", 400.0)
    assert "/" not in item_id and ":" not in item_id
    event, context = make_event("cam-1:z1/7"), make_context()
    assert spool.write(item_id, event, context, [EvidenceFrame(1, "clean", b"jpg1", T)])
    assert not spool.write(item_id, event, context, [])  # same event again: no second item
    item = spool.load(item_id)
    assert item.frames == [SpooledFrame(1, "clean", T, tmp_path / "items" / item_id / "1-clean.jpg")]
    assert item.frames[0].read() == b"jpg1"
    assert item.event == event and item.event.event is EventKind.OPENED
    assert item.context == context  # typed both ways: no dicts read back with defaults
    assert list((tmp_path / "tmp").iterdir()) == []  # nothing half-written left behind


def test_an_item_spooled_by_an_older_version_still_loads(tmp_path):
    """``fixtures/spool-item-v1.json`` is an ``item.json`` as the untyped spool wrote it (context
    assembled as a dict by streams/events.py, event time as ISO text); plus an even older one without
    ``place_key`` and with a context that has only ``camera_id`` and a location address."""
    spool = Spool(tmp_path)
    for name in ("spool-item-v1", "spool-item-v0"):
        (tmp_path / "items" / name).mkdir()
        shutil.copy(FIXTURES / f"{name}.json", tmp_path / "items" / name / "item.json")
    item = spool.load("spool-item-v1")
    assert item.event.event is EventKind.OPENED and item.event.kind is ViolationKind.STREET_VENDING
    assert item.event.escalation is Escalation.YELLOW and item.event.place_key == "cam-1/z1/f0"
    assert item.context == CaseContext(
        camera_id="cam-1",
        camera_name="人民路口",
        model_version="bootstrap-abc123",
        frame_wh=(1280, 720),
        zone_name="东北角",
        location=LocationConfig(
            address="人民路与滨河路口东北角", lon=120.1, lat=30.2, grid_code="330102001", district=""
        ),
        timezone="Asia/Shanghai",
        event_time=dt.datetime(2024, 6, 1, 10, 6, tzinfo=dt.UTC),
        bike_operator_routing=False,
    )
    assert [(f.seq, f.variant, f.frame_ts) for f in item.frames] == [
        (1, "clean", dt.datetime(2024, 6, 1, 10, 0, tzinfo=dt.UTC)),
        (2, "clean", dt.datetime(2024, 6, 1, 10, 6, tzinfo=dt.UTC)),
    ]
    old = spool.load("spool-item-v0")
    assert old.event.place_key == "" and old.event.object_count == 1
    assert old.context == CaseContext(camera_id="bench-cam", location=LocationConfig(address="基准测试路口"))
    assert old.context.timezone == "Asia/Shanghai" and old.context.event_time is None


def test_context_round_trips_through_json():
    ctx = make_context(place_key="cam-1/z1/f0", bike_operator_routing=True, timezone="Asia/Urumqi")
    assert CaseContext.from_json(json.loads(json.dumps(ctx.to_json()))) == ctx
    bare = CaseContext("cam-2")
    assert CaseContext.from_json(bare.to_json()) == bare


def test_due_for_send_and_done(tmp_path):
    spool = Spool(tmp_path)
    event, context = make_event(), make_context()
    for i in range(3):
        spool.write(f"i{i}", event, context, [])
    assert spool.due_for_send(30) == ["i0", "i1", "i2"]  # never sent
    spool.mark_sent("i0")
    assert spool.due_for_send(30) == ["i1", "i2"]
    old = time.time() - 60
    os.utime(tmp_path / "sent" / "i0", (old, old))
    assert spool.due_for_send(30) == ["i0", "i1", "i2"]  # sent long ago, still no case: again
    spool.mark_done("i1")
    assert spool.is_done("i1") and spool.due_for_send(30) == ["i0", "i2"]
    assert not spool.write("i1", event, context, [])  # a done item is never written again
    with pytest.raises(SpoolItemNotFound, match="already done"):
        spool.load("i1")


def test_crash_between_done_marker_and_cleanup_is_finished_by_the_relay(tmp_path):
    spool = Spool(tmp_path)
    spool.write("i0", make_event(), make_context(), [])
    (tmp_path / "done" / "i0").touch()  # the marker made it, the clean-up did not
    assert spool.due_for_send(0) == []
    assert spool.pending_ids() == []


@pytest.mark.parametrize("bad", ["../x", "a/b", "", ".", "..", "x" * 200])
def test_item_ids_cannot_escape_the_spool(bad):
    with pytest.raises(ValueError, match="not a valid id"):
        check_item_id(bad)
