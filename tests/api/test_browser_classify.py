"""A 待分类 (unclassified) case in the review queue (issue 14), in headless Chromium: badges in the list, the
header and the crop; the 待分类 filter; the reviewer drags the object's box and picks the kind by key; the case
takes the kind's code and name, its box reaches `urbaneye dataset build`'s manifest, and the statistics page
names the configured kind. Screenshots go to the test's tmp dir."""

from __future__ import annotations

import datetime as dt

import pytest

from datasets.builder import BuildOptions, build_dataset
from tests.api.test_browser import login, server, wait_js  # noqa: F401 - server is a fixture
from tests.api.test_browser_queue import chromium, people  # noqa: F401 - fixtures
from tests.api.test_kinds import cameras_file, made
from tests.kinds import GOODS_DISPLAY
from tests.waiting import wait_for
from urbaneye.db.models import Case

pytestmark = pytest.mark.browser

BOX = (180, 110, 290, 200)  # what the reviewer drags, in pixels of the 480x270 evidence frame


@pytest.fixture
def goods_display_camera(use_cameras_file, make_camera, tmp_path) -> None:  # noqa: ANN001
    """The cameras file defines the configured kind goods_display (出店陈列); camera cam-1 exists."""
    use_cameras_file(cameras_file(tmp_path / "cameras.yaml", GOODS_DISPLAY))
    make_camera("cam-1")


def drag_box(page, seq: int, box: tuple[int, int, int, int], frame_wh=(480, 270)) -> None:  # noqa: ANN001
    r = page.locator(f".frame[data-seq='{seq}'] .imgwrap").bounding_box()
    sx, sy = r["width"] / frame_wh[0], r["height"] / frame_wh[1]
    page.mouse.move(r["x"] + box[0] * sx, r["y"] + box[1] * sy)
    page.mouse.down()
    page.mouse.move(r["x"] + (box[0] + box[2]) / 2 * sx, r["y"] + (box[1] + box[3]) / 2 * sy)
    page.mouse.move(r["x"] + box[2] * sx, r["y"] + box[3] * sy)
    page.mouse.up()


def test_an_unclassified_case_is_classified_by_key_and_its_box_reaches_the_dataset(
    chromium,  # noqa: F811 - the fixture imported above
    people,  # noqa: F811
    db,
    make_case,
    goods_display_camera,
    tmp_path,
) -> None:  # noqa: ANN001
    now = dt.datetime.now(dt.UTC)
    vending = make_case(created_at=now - dt.timedelta(minutes=5))
    case = made(
        db,
        make_case,
        kind="exposed_garbage",
        created_at=now - dt.timedelta(minutes=2),
        gbt_code="0102",
        gbt_name="暴露垃圾",
        kind_name_zh="暴露垃圾",
        unclassified=True,
    )
    page = chromium.page()
    login(page, "demo", "demo-review")
    page.wait_for_selector(f"#queue-list li[data-id='{vending.id}'].current")
    assert page.locator(f"#queue-list li[data-id='{case.id}'] .tag.unclassified").inner_text() == "待分类"
    assert page.locator(f"#queue-list li[data-id='{vending.id}'] .tag").count() == 0

    # the 待分类 filter leaves only the unclassified case
    wait_js(page, "document.querySelectorAll('#kind-filter option').length === 7", "the kinds in the filter")
    assert page.inner_text("#kind-filter option[value='goods_display']") == "出店陈列（0504）"
    page.select_option("#kind-filter", "__unclassified")
    page.wait_for_selector(f"#queue-list li[data-id='{case.id}'].current")
    wait_js(page, "document.querySelectorAll('#queue-list li').length === 1", "only the 待分类 case listed")
    page.wait_for_selector(".decide .kind-key[data-kind='goods_display']")
    assert page.inner_text("#unclassified-badge") == "待分类"
    assert page.locator(".crop h3 .tag.unclassified").count() == 1
    assert page.inner_text("#fact-kind") == "待分类（疑似暴露垃圾）"
    assert page.locator("#btn-confirm").count() == 0  # no plain confirm: a kind is needed
    keys = page.inner_text(".decide")
    for key, name in (
        ("Q", "占道经营"),
        ("W", "暴露垃圾"),
        ("E", "非机动车乱停放"),
        ("R", "露天烧烤"),
        ("T", "出店陈列"),
    ):
        assert f"{key} {name}" in keys
    legend = page.inner_text("footer.legend")
    assert "T 出店陈列" in legend and "1 误检" in legend
    page.screenshot(path=tmp_path / "unclassified.png")

    page.keyboard.press("y")  # refused on screen, nothing sent
    page.wait_for_selector("#toast.show >> text=请按类型键选择违规类型")
    on_screen = page.get_attribute("#case", "data-case-id")
    assert on_screen == case.id

    drag_box(page, 2, BOX)
    page.wait_for_selector(".frame[data-seq='2'] rect.classbox")
    page.wait_for_selector("#classbox-state >> text=目标框已调整")
    page.screenshot(path=tmp_path / "box-adjusted.png")
    page.keyboard.press("t")

    def classified() -> Case | None:
        db.expire_all()
        row = db.get(Case, case.id)
        return row if row.status == "queued" else None

    row = wait_for(classified, what="the case classified and confirmed")
    assert (row.kind, row.gbt_code, row.gbt_name, row.kind_name_zh, row.unclassified) == (
        "goods_display",
        "0504",
        "店外经营",
        "出店陈列",
        False,
    )
    (corr,) = row.corrections
    assert corr["action"] == "adjust" and corr["label"] == "vending_stall" and corr["seq"] == 2
    assert all(abs(got - want) <= 2 for got, want in zip(corr["xyxy"], BOX, strict=True)), corr["xyxy"]
    page.wait_for_selector("#queue-empty")  # the 待分类 filter's queue is done
    page.wait_for_selector("#toast.show >> text=已分类并确认：出店陈列")

    # what `urbaneye dataset build` writes: the reviewer's box with the kind's object class
    result = build_dataset(db, options=BuildOptions(synth_share=0))
    item = next(it for it in result.manifest["items"] if it["case_id"] == case.id and it["evidence_seq"] == 2)
    assert item["kind"] == "goods_display"
    assert [(lb["label"], lb["source"]) for lb in item["labels"]] == [("vending_stall", "correction")]
    assert item["labels"][0]["xyxy"] == corr["xyxy"]

    page.goto(page.base + "/ui/#/stats")
    page.wait_for_selector("#stats-legend [data-kind='goods_display']")
    assert page.inner_text("#stats-legend [data-kind='goods_display']") == "出店陈列"
    page.wait_for_selector("svg rect[data-kind='goods_display']")
    page.screenshot(path=tmp_path / "stats.png")


def test_a_configured_vending_kind_offers_permitted_vending(
    chromium,  # noqa: F811 - the fixture imported above
    people,  # noqa: F811
    db,
    make_case,
    goods_display_camera,  # goods_display's classes: [vending_stall]
) -> None:  # noqa: ANN001
    now = dt.datetime.now(dt.UTC)
    goods = made(
        db,
        make_case,
        kind="goods_display",
        created_at=now - dt.timedelta(minutes=5),
        gbt_code="0504",
        gbt_name="店外经营",
        kind_name_zh="出店陈列",
    )
    garbage = made(db, make_case, kind="exposed_garbage", created_at=now - dt.timedelta(minutes=2))
    page = chromium.page()
    login(page, "demo", "demo-review")
    page.wait_for_selector(f"#queue-list li[data-id='{goods.id}'].current")
    # a configured kind of vending stalls is vending: 合规经营 is offered (once the kinds are known)
    page.wait_for_selector(".decide button[data-reason='permitted_vending']")
    page.keyboard.press("2")

    def rejected() -> Case | None:
        db.expire_all()
        row = db.get(Case, goods.id)
        return row if row.status == "rejected" else None

    assert wait_for(rejected, what="the goods_display case rejected").reject_reason == "permitted_vending"
    page.wait_for_selector(f"#queue-list li[data-id='{garbage.id}'].current")
    page.wait_for_selector(
        f"#case[data-case-id='{garbage.id}'] .decide button[data-reason='false_detection']"
    )
    assert page.locator(".decide button[data-reason='permitted_vending']").count() == 0
