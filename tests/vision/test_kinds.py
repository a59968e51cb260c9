"""Violation kinds from configuration (issue 19): the built-in four as template instances, and new kinds
(``violations:`` in the cameras file) through the same rules, with their ids, codes and names on events."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.kinds import GOODS_DISPLAY
from tests.vision.factories import BAG, STALL, Obj, Scene, camera, of, rect, render, run, zone
from vision.config import (
    DEFAULT_DWELL_S,
    DEFAULT_ZONE_VIOLATIONS,
    ConfigError,
    RoadClass,
    ZoneKind,
    parse_cameras,
)
from vision.kinds import BUILTIN_KINDS, kind_catalogue, zone_watches
from vision.rules import RULES, rules_for
from vision.types import DEFAULT_GBT_CODE, VIOLATION_NAMES_ZH, Escalation, ViolationEvent, ViolationKind
from vision.zones import EXEMPTION_DEFAULTS

#: 乱堆物料: three or more garbage-class objects together at a shop frontage.
MATERIAL_PILING = {
    "id": "material_piling",
    "name_zh": "乱堆物料",
    "gbt_code": "0107",
    "gbt_name": "乱堆物料",
    "template": "cluster",
    "classes": ["garbage"],
    "min_count": 3,
    "merge_widths": 2.0,
    "zone_kinds": ["no_vending", "monitored"],
    "frontage_only": True,
    "dwell_s": {"main": 60, "secondary": 120, "lane": 300},
}
#: 垃圾桶满溢: garbage touching a trash bin, watched in bin areas (where exposed garbage is exempt).
BIN_OVERFLOW = {
    "id": "bin_overflow",
    "name_zh": "垃圾桶满溢",
    "gbt_code": "0199",
    "gbt_name": "垃圾满溢",
    "template": "pair",
    "classes": ["garbage"],
    "partner_classes": ["trash_bin"],
    "partner_reach": 0.2,
    "zone_kinds": ["bin_area"],
    "not_same_box_as": ["trash_bin"],
    "dwell_s": 30,
    "escalation": False,
}


def file_with(*kinds: dict[str, Any], zones: list[dict[str, Any]]) -> Any:
    return parse_cameras(
        {
            "violations": list(kinds),
            "cameras": [{"id": "cam-1", "source": {"url": "f.mp4"}, "zones": zones}],
        }
    )


def run_file(cameras_file: Any, objs: list[Obj], duration_s: float) -> list[ViolationEvent]:
    return run(cameras_file.cameras[0], objs, duration_s, rule_config=cameras_file.rules)


def test_builtin_kinds_are_the_built_in_behaviour() -> None:
    """The catalogue's built-ins say what the zone defaults, dwell table, codes and names say."""
    assert list(BUILTIN_KINDS) == list(RULES)
    for kind, spec in BUILTIN_KINDS.items():
        assert RULES[kind].spec.kind_spec is spec and RULES[kind].spec.kind is kind
        assert spec.name_zh == VIOLATION_NAMES_ZH[kind] and spec.gbt_code == DEFAULT_GBT_CODE[kind]
        for road in RoadClass:
            assert spec.dwell_on(road) == DEFAULT_DWELL_S[road][kind]
        watching = {zk for zk, kinds in DEFAULT_ZONE_VIOLATIONS.items() if kind in kinds}
        assert set(spec.zone_kinds) == watching
        assert set(spec.exempt_zone_kinds) == {zk for zk, ks in EXEMPTION_DEFAULTS.items() if kind in ks}
    assert {str(k) for k in rules_for(kind_catalogue(parse_cameras({})))} == {str(k) for k in ViolationKind}


def test_contract_goods_display_opens_when_a_stall_stays_40_s_in_a_monitored_zone() -> None:
    cf = file_with(GOODS_DISPLAY, zones=[zone("m1", "monitored", road_class="main")])
    events = run_file(cf, [Obj("vending_stall", STALL, start_s=2.0)], duration_s=60.0)
    opened = of(events, "opened")
    assert [e.kind for e in opened] == ["goods_display"]
    e = opened[0]
    assert (e.gbt_code, e.gbt_name, e.kind_name_zh, e.unclassified) == ("0504", "店外经营", "出店陈列", False)
    assert 40.0 <= e.ts_s - 2.0 <= 46.0
    assert ViolationEvent.from_json(e.to_json()).kind == "goods_display"
    # the same stall for less than the dwell opens nothing
    assert of(run_file(cf, [Obj("vending_stall", STALL, start_s=2.0, end_s=30.0)], 60.0), "opened") == []


def test_builtin_events_carry_code_and_chinese_names() -> None:
    cam = camera(zone("z1", "no_vending", dwell_s={"street_vending": 20}, frontage_id="A12"))
    opened = of(run(cam, [Obj("vending_stall", STALL)], 40.0), "opened")
    assert [(e.kind, e.gbt_code, e.gbt_name, e.kind_name_zh) for e in opened] == [
        (ViolationKind.STREET_VENDING, "0504", "店外经营", "占道经营")
    ]


PILES = [(100.0 + 70 * i, 700.0, 150.0 + 70 * i, 750.0) for i in range(3)]


@pytest.mark.parametrize(("piles", "opens"), [(3, True), (2, False)])
def test_material_piling_needs_a_cluster_at_a_frontage(piles: int, opens: bool) -> None:
    frontage = zone(
        "shop", "no_vending", frontage_id="F-7", road_class="main", violations=["material_piling"]
    )
    cf = file_with(MATERIAL_PILING, zones=[frontage])
    events = run_file(cf, [Obj("garbage", PILES[i]) for i in range(piles)], duration_s=90.0)
    opened = of(events, "opened")
    assert [e.kind for e in opened] == (["material_piling"] if opens else [])
    if opens:
        assert opened[0].object_count == 3 and opened[0].gbt_name == "乱堆物料"


def test_material_piling_is_watched_only_at_a_frontage() -> None:
    cf = file_with(MATERIAL_PILING, zones=[zone("plain", "no_vending", road_class="main")])
    assert not zone_watches(cf.cameras[0].zones[0], kind_catalogue(cf)["material_piling"])
    assert of(run_file(cf, [Obj("garbage", p) for p in PILES], duration_s=90.0), "opened") == []


BIN = (400.0, 600.0, 480.0, 720.0)


@pytest.mark.parametrize(
    ("bag", "opens"),
    [((482.0, 680.0, 530.0, 720.0), True), ((700.0, 680.0, 748.0, 720.0), False)],
    ids=["touching-the-bin", "away-from-the-bin"],
)
def test_bin_overflow_is_garbage_touching_a_bin(bag: tuple[float, ...], opens: bool) -> None:
    cf = file_with(BIN_OVERFLOW, zones=[zone("bins", "bin_area", rect(0.3, 0.5, 0.8, 0.8))])
    objs = [Obj("trash_bin", BIN), Obj("garbage", bag)]  # type: ignore[arg-type]
    events = run_file(cf, objs, duration_s=60.0)
    opened = of(events, "opened")
    assert [e.kind for e in opened] == (
        ["bin_overflow"] if opens else []
    )  # never exposed_garbage in a bin area
    if opens:
        assert opened[0].escalation is Escalation.BLUE and opened[0].kind_name_zh == "垃圾桶满溢"


def test_escalation_off_stays_blue_on_repeats() -> None:
    cf = file_with(BIN_OVERFLOW, zones=[zone("bins", "bin_area", rect(0.3, 0.5, 0.8, 0.8))])
    bag = (482.0, 680.0, 530.0, 720.0)
    objs = [Obj("trash_bin", BIN)] + [
        Obj("garbage", bag, start_s=s, end_s=s + 50.0) for s in (0.0, 250.0, 500.0)
    ]
    opened = of(run_file(cf, objs, duration_s=600.0), "opened")  # type: ignore[arg-type]
    assert len(opened) == 3 and {e.escalation for e in opened} == {Escalation.BLUE}


@pytest.mark.parametrize(
    ("kinds", "zones", "message"),
    [
        (
            [{**GOODS_DISPLAY, "classes": ["stall"]}],
            [],
            "violations[goods_display]: classes ['stall'] are not object kinds",
        ),
        ([{**GOODS_DISPLAY, "template": "cluster"}], [], "template cluster needs min_count >= 2"),
        ([{**GOODS_DISPLAY, "template": "pair"}], [], "template pair needs partner_classes"),
        ([{**GOODS_DISPLAY, "id": "street_vending"}], [], "id 'street_vending' is a built-in kind"),
        ([GOODS_DISPLAY, GOODS_DISPLAY], [], "id 'goods_display' is defined twice"),
        ([{**GOODS_DISPLAY, "id": "Goods"}], [], "violations[Goods].id"),
        ([{**GOODS_DISPLAY, "dwell_s": {"main": 10}}], [], "violations[goods_display].dwell_s"),
        (
            [],
            [zone("z1", "monitored", violations=["goods_display"])],
            "zones[z1] names unknown violation kind(s)",
        ),
    ],
)
def test_configuration_errors_name_the_item(kinds: list[dict], zones: list[dict], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        file_with(*kinds, zones=zones)
    assert message in str(err.value)


def test_a_zone_list_is_exhaustive_and_dwell_overrides_apply_to_configured_kinds() -> None:
    listed = zone("m1", "monitored", violations=["exposed_garbage"])
    cf = file_with(GOODS_DISPLAY, zones=[listed])
    assert of(run_file(cf, [Obj("vending_stall", STALL)], 60.0), "opened") == []
    quick = zone("m1", "monitored", dwell_s={"goods_display": 10})
    cf = file_with(GOODS_DISPLAY, zones=[quick])
    opened = of(run_file(cf, [Obj("vending_stall", STALL)], 30.0), "opened")
    assert [e.kind for e in opened] == ["goods_display"] and opened[0].ts_s <= 16.0
    assert ZoneKind.MONITORED in kind_catalogue(cf)["goods_display"].zone_kinds
    assert [e.kind for e in of(run_file(cf, [Obj("garbage", BAG)], 30.0), "opened")] == []


CONTRACT_YAML = """
violations:
  - id: goods_display          # the event/case kind
    name_zh: 出店陈列
    gbt_code: "0504"
    template: stationary_object
    classes: [vending_stall]
    zone_kinds: [monitored]
    dwell_s: 40                # a number, or per road class {main: …, secondary: …, lane: …}
cameras:
  - id: cam-1
    source: {url: cam-1.mp4}
    zones:
      - {id: pavement, kind: monitored, polygon: [[0, 0], [1, 0], [1, 1], [0, 1]]}
"""


def test_rules_replay_writes_the_configured_kind(tmp_path: Path) -> None:
    """The issue's contract, through the ``urbaneye rules-replay`` command as operators run it."""
    (tmp_path / "cameras.yaml").write_text(CONTRACT_YAML, encoding="utf-8")
    with (tmp_path / "frames.jsonl").open("w", encoding="utf-8") as f:
        for t, det in render(Scene([Obj("vending_stall", STALL, start_s=5.0)], 60.0, 2.5)):
            boxes = [{"label": "vending_stall", "xyxy": b.tolist(), "score": 0.8} for b in det.xyxy]
            f.write(
                json.dumps({"camera_id": "cam-1", "ts_s": t, "frame_wh": [1000, 1000], "detections": boxes})
                + "\n"
            )
    out = tmp_path / "events.jsonl"
    args = [
        "rules-replay",
        "--cameras",
        str(tmp_path / "cameras.yaml"),
        "--detections",
        str(tmp_path / "frames.jsonl"),
    ]
    done = subprocess.run(
        [sys.executable, "-m", "urbaneye.cli", *args, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    opened = [
        e for e in map(json.loads, out.read_text(encoding="utf-8").splitlines()) if e["event"] == "opened"
    ]
    assert [(e["kind"], e["gbt_code"], e["kind_name_zh"], e["unclassified"]) for e in opened] == [
        ("goods_display", "0504", "出店陈列", False)
    ]
    assert 45.0 <= opened[0]["ts_s"] <= 52.0


def test_the_documented_kinds_are_the_tested_ones() -> None:
    """docs/cameras.md's full example defines 乱堆物料 and 垃圾桶满溢 as these tests run them."""
    from tests.vision.test_cli import docs_example

    catalogue = kind_catalogue(parse_cameras(docs_example(), origin="docs/cameras.md"))
    for tested in (MATERIAL_PILING, BIN_OVERFLOW):
        documented = catalogue[tested["id"]].model_dump(exclude={"dwell_s"})
        assert documented == kind_catalogue(file_with(tested, zones=[]))[tested["id"]].model_dump(
            exclude={"dwell_s"}
        )
