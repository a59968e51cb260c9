"""The hand-off spool: complete items only, idempotent ids, re-send schedule, done markers."""

from __future__ import annotations

import datetime as dt
import os
import time

import pytest

from urbaneye.cases.spool import Spool, SpoolItemNotFound, check_item_id, make_item_id

T = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)


def test_write_load_and_idempotent_ids(tmp_path):
    spool = Spool(tmp_path)
    item_id = make_item_id("cam-1:z1/7", "opened", 400.0)
    assert item_id == make_item_id("cam-1:z1/7", "opened", 400.0)
    assert "/" not in item_id and ":" not in item_id
    assert spool.write(item_id, {"event": "opened"}, {"camera_id": "cam-1"}, [(1, "clean", T, b"jpg1")])
    assert not spool.write(item_id, {"event": "opened"}, {}, [])  # same event again: no second item
    item = spool.load(item_id)
    assert item.frames[0].read() == b"jpg1" and item.frames[0].frame_ts == T
    assert item.context == {"camera_id": "cam-1"}
    assert list((tmp_path / "tmp").iterdir()) == []  # nothing half-written left behind


def test_due_for_send_and_done(tmp_path):
    spool = Spool(tmp_path)
    for i in range(3):
        spool.write(f"i{i}", {}, {}, [])
    assert spool.due_for_send(30) == ["i0", "i1", "i2"]  # never sent
    spool.mark_sent("i0")
    assert spool.due_for_send(30) == ["i1", "i2"]
    old = time.time() - 60
    os.utime(tmp_path / "sent" / "i0", (old, old))
    assert spool.due_for_send(30) == ["i0", "i1", "i2"]  # sent long ago, still no case: again
    spool.mark_done("i1")
    assert spool.is_done("i1") and spool.due_for_send(30) == ["i0", "i2"]
    assert not spool.write("i1", {}, {}, [])  # a done item is never written again
    with pytest.raises(SpoolItemNotFound, match="already done"):
        spool.load("i1")


def test_crash_between_done_marker_and_cleanup_is_finished_by_the_relay(tmp_path):
    spool = Spool(tmp_path)
    spool.write("i0", {}, {}, [])
    (tmp_path / "done" / "i0").touch()  # the marker made it, the clean-up did not
    assert spool.due_for_send(0) == []
    assert spool.pending_ids() == []


@pytest.mark.parametrize("bad", ["../x", "a/b", "", ".", "..", "x" * 200])
def test_item_ids_cannot_escape_the_spool(bad):
    with pytest.raises(ValueError, match="not a valid id"):
        check_item_id(bad)
