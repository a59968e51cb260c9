"""The annotation page (#/annotate) in headless Chromium (issue 14): a reviewer accepts the model's proposal,
draws and labels a second box with the keyboard (a third one drawn and deleted), submits with Enter; the next
frame is marked "nothing here" with N; the queue's empty state shows; and both frames appear in
`urbaneye dataset build`'s output with their provenance. No console errors (the ``chromium`` fixture)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.api.conftest import scene_jpeg
from tests.api.test_browser import login, server, wait_js  # noqa: F401 - server is a fixture
from tests.api.test_browser_queue import chromium, people  # noqa: F401 - fixtures
from tests.waiting import wait_for
from urbaneye import annotations as queue
from urbaneye.db.annotations import AnnotationItem, SampleReason
from vision.digest import sha256_hex

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
T0 = dt.datetime(2026, 1, 5, 12, 30, tzinfo=dt.UTC)
W, H = 960, 540
STALL = (384.0, 243.0, 557.0, 378.0)  # the stall scene_jpeg draws (0.4..0.58 w, 0.45..0.7 h)


def _add(db, store, seed: int, at: dt.datetime, proposals: tuple) -> str:  # noqa: ANN001
    data = scene_jpeg(f"cam-9 frame {seed}", w=W, h=H, seed=seed)
    sha = sha256_hex(data)
    key = queue.frame_key("cam-9", at, sha)
    store.put(key, data)
    new = queue.NewItem("cam-9", at, at.timestamp(), SampleReason.NEAR_THRESHOLD, "20-24", "bootstrap-x", key, sha,
                        W, H, proposals)  # fmt: skip
    item = queue.add_item(db, new)
    item.created_at = at
    db.commit()
    return item.id


def _drag(page, x1: float, y1: float, x2: float, y2: float) -> None:  # noqa: ANN001
    """Draw a box from image pixel (x1, y1) to (x2, y2) with the mouse."""
    r = page.eval_on_selector(
        "#ann-overlay", "e => { const b = e.getBoundingClientRect(); return [b.x, b.y, b.width, b.height]; }"
    )
    sx, sy = r[2] / W, r[3] / H
    page.mouse.move(r[0] + x1 * sx, r[1] + y1 * sy)
    page.mouse.down()
    page.mouse.move(r[0] + (x1 + x2) / 2 * sx, r[1] + (y1 + y2) / 2 * sy)
    page.mouse.move(r[0] + x2 * sx, r[1] + y2 * sy)
    page.mouse.up()


def _boxes(page) -> str:  # noqa: ANN001
    return page.get_attribute("#annotate", "data-boxes")


def test_two_boxes_by_keyboard_reach_the_dataset(chromium, people, db, store, tmp_path):  # noqa: ANN001, F811
    proposal = queue.Proposal("vending_stall", STALL, 0.41, "model")
    first = _add(db, store, 1, T0, (proposal,))
    second = _add(db, store, 2, T0 + dt.timedelta(hours=6), ())

    page = chromium.page()
    login(page, "demo", "demo-review")
    page.goto(page.base + "/#/annotate")
    wait_js(
        page, f"document.getElementById('annotate')?.dataset.itemId === '{first}'", "first frame on screen"
    )
    wait_js(page, "(() => { const i = document.getElementById('ann-img'); return i.complete && i.naturalWidth > 0; })()",
            "frame loaded")  # fmt: skip
    assert _boxes(page) == "1"  # the model's proposal, ready to accept
    assert "摊位" in page.inner_text("#ann-boxes")

    _drag(page, 600, 280, 700, 360)  # a pile of garbage the model missed
    wait_js(page, "document.getElementById('annotate').dataset.boxes === '2'", "box drawn")
    page.keyboard.press("5")  # 垃圾
    wait_js(page, "document.getElementById('annotate').dataset.labelled === '2'", "box labelled")
    _drag(page, 50, 50, 120, 110)  # a stray box ...
    wait_js(page, "document.getElementById('annotate').dataset.boxes === '3'", "third box drawn")
    page.keyboard.press("Backspace")  # ... deleted again
    wait_js(page, "document.getElementById('annotate').dataset.boxes === '2'", "stray box deleted")
    page.screenshot(path=str(tmp_path / "annotate.png"))
    page.keyboard.press("Enter")

    wait_js(page, f"document.getElementById('annotate')?.dataset.itemId === '{second}'", "the next frame")
    row = wait_for(lambda: db.get(AnnotationItem, first, populate_existing=True).status == "labelled" and
                   db.get(AnnotationItem, first), what="labels saved")  # fmt: skip
    labels = {b["label"]: b["xyxy"] for b in row.labels}
    assert set(labels) == {"vending_stall", "garbage"} and labels["vending_stall"] == list(STALL)
    gx1, gy1, gx2, gy2 = labels["garbage"]
    assert abs(gx1 - 600) <= 3 and abs(gy1 - 280) <= 3 and abs(gx2 - 700) <= 3 and abs(gy2 - 360) <= 3

    page.keyboard.press("n")  # nothing here
    wait_js(page, "document.getElementById('annotate')?.dataset.state === 'empty'", "empty queue")
    assert "暂无待标注的画面" in page.inner_text("#annotate")
    assert db.get(AnnotationItem, second, populate_existing=True).status == "negative"

    out = subprocess.run(
        [sys.executable, "-m", "urbaneye.cli", "dataset", "build", "--no-pseudo", "--synth-share", "0", "--json"],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    built = json.loads(out.stdout)
    manifest = json.loads(Path(built["manifest_uri"]).read_text())
    real = {it["annotation_item"]: it for it in manifest["items"] if it["source"] == "real_frame"}
    assert set(real) == {first, second}
    assert sorted(lb["label"] for lb in real[first]["labels"]) == ["garbage", "vending_stall"]
    assert (
        real[first]["proposals"] == [proposal.to_json()] and real[first]["labelled_by"] == people["demo"].id
    )
    assert real[second]["labels"] == [] and real[second]["verdict"] == "annotation:negative"
    counts = built["counts"]["real_frames"]
    assert sum(c["boxes"] for c in counts.values()) == 2 and sum(c["negatives"] for c in counts.values()) == 1


def test_empty_queue(chromium, people, db):  # noqa: ANN001, F811
    page = chromium.page()
    login(page, "demo", "demo-review")
    page.goto(page.base + "/#/annotate")
    wait_js(page, "document.getElementById('annotate')?.dataset.state === 'empty'", "empty state")
    assert "暂无待标注的画面" in page.inner_text("#annotate")
    page.keyboard.press("Enter")  # keys on an empty queue do nothing (and throw nothing)
    page.keyboard.press("5")
