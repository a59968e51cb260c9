"""The evidence uploader thread: it ends when told to (a worker shutting down, a test torn down), and the
items it still retried wait in the spool for the relay."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from tests.urbaneye.conftest import make_context, make_event, make_frames
from tests.waiting import wait_for
from urbaneye.cases.spool import Spool
from urbaneye.cases.uploads import evidence_uploader, stop_uploaders


def _uploader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "evidence-uploader" and t.is_alive()]


def test_a_stopped_uploader_ends_its_thread_and_leaves_what_it_retried_in_the_spool(
    tmp_path: Path, settings_env, caplog: pytest.LogCaptureFixture
) -> None:  # noqa: ANN001
    settings_env(evidence_backend="fs")
    spool = Spool(tmp_path / "spool")
    event = make_event("cam-1:z1:1")
    assert spool.write("item-1", event, make_context(), make_frames(event))
    gone = f"sqlite:///{tmp_path / 'no-such-dir' / 'ue.db'}"  # a database that cannot be opened
    before = set(_uploader_threads())

    caplog.set_level(logging.ERROR, logger="urbaneye.cases.uploads")
    uploader = evidence_uploader(spool, gone)
    assert evidence_uploader(spool, gone) is uploader  # one per spool and database in a process
    uploader.submit("item-1")
    wait_for(lambda: "item-1 failed; retrying later" in caplog.text, 30, "the upload to fail and be deferred")
    assert len(set(_uploader_threads()) - before) == 1

    stop_uploaders()
    assert set(_uploader_threads()) - before == set()  # ended, though it had an item to retry
    assert spool.exists("item-1")  # the relay re-sends it
    fresh = evidence_uploader(spool, gone)  # the next call starts a new one
    assert fresh is not uploader
    assert fresh.stop()
