"""Regenerate the scenario suite (datasets/scenarios/*.yaml) and the demo scenarios and cameras.

The YAML files are the source of truth and can be edited by hand; this script exists so that zone
polygons are computed from the rendered street rather than typed. Run from the repository root:

    .venv/bin/python -m datasets.scenarios.build_suite
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from datasets.synth.scenario import ViewSpec, ZoneRegion, build_camera, build_layout, region_polygon

HERE = Path(__file__).resolve().parent
DEMO_DIR = HERE.parent / "demo"

BASE_VIEW: dict[str, Any] = {
    "style_seed": 11,
    "time_of_day": "day",
    "weather": "clear",
    "camera": {"height_m": 5.5, "pitch_deg": 22.0, "yaw_deg": 5.0, "hfov_deg": 60.0, "x_m": 0.0},
    "street": {
        "lanes": 2,
        "road_width_m": 7.5,
        "right_sidewalk_m": 6.5,
        "left_sidewalk_m": 4.5,
        "blind_path": True,
        "blind_path_from_curb_m": 3.0,
        "bike_bays_z_m": [[8.0, 13.0]],
        "bike_bay_width_m": 1.8,
        "night_markets_z_m": [[8.0, 22.0]],
        "left_side": "shops",
    },
    "zone_regions": {
        "sidewalk-r": {"region": "right_sidewalk", "z_m": [5.0, 32.0]},
        "blind-path": {"region": "blind_path_walk", "z_m": [5.0, 32.0]},
        "bike-bay": {"region": "bike_bay", "z_m": [8.0, 13.0]},
        "sidewalk-l": {"region": "left_sidewalk", "z_m": [5.0, 32.0]},
        "night-market": {"region": "night_market", "z_m": [8.0, 22.0]},
    },
}

ZONES: dict[str, dict[str, Any]] = {
    "sidewalk-r": {"name": "人民路东侧人行道", "kind": "no_vending", "road_class": "main"},
    "blind-path": {"name": "人民路东侧盲道", "kind": "no_parking", "road_class": "main"},
    "bike-bay": {"name": "人民路非机动车停放区", "kind": "bike_bay"},
    "sidewalk-l": {"name": "人民路西侧人行道", "kind": "no_vending", "road_class": "secondary"},
    "night-market": {
        "name": "人民路夜市",
        "kind": "allowed_vending",
        "schedule": {"windows": ["18:00-23:00"]},
    },
}

SUITE_DWELL_S = {
    "sidewalk-r": {"street_vending": 90, "exposed_garbage": 60, "open_air_barbecue": 60},
    "blind-path": {"bike_misparking": 90},
    "sidewalk-l": {"street_vending": 90, "exposed_garbage": 60, "open_air_barbecue": 60},
}
DEMO_DWELL_S = {
    "sidewalk-r": {"street_vending": 40, "exposed_garbage": 40, "open_air_barbecue": 30},
    "blind-path": {"bike_misparking": 35},
    "sidewalk-l": {"street_vending": 40, "exposed_garbage": 40, "open_air_barbecue": 30},
}


def at(region: str, z_m: float, across: float = 0.5) -> dict[str, Any]:
    return {"region": region, "z_m": z_m, "across": across}


def walker(aid: str, seed: int, t0: float, t1: float, src: dict, dst: dict, **extra: Any) -> dict[str, Any]:
    return {
        "id": aid,
        "kind": "person",
        "seed": seed,
        "enter_s": t0,
        "exit_s": t1,
        "from": src,
        "to": dst,
        **extra,
    }


def passers(prefix: str, seed: int, start_s: float, every_s: float, until_s: float) -> list[dict[str, Any]]:
    """Pedestrians and riders that cross the view and never stop (the background of every scenario)."""
    out = []
    t, k = start_s, 0
    routes = [
        (at("right_sidewalk", 34, 0.8), at("right_sidewalk", 4, 0.85)),
        (at("right_sidewalk", 5, 0.15), at("right_sidewalk", 34, 0.2)),
        (at("left_sidewalk", 32, 0.5), at("left_sidewalk", 5, 0.5)),
        (at("right_sidewalk", 34, 0.92), at("right_sidewalk", 6, 0.92)),
    ]
    while t + 30 < until_s:
        src, dst = routes[k % len(routes)]
        out.append(walker(f"{prefix}-walker-{k}", seed + k, t, t + 30, src, dst))
        t += every_s
        k += 1
    return out


def riders(prefix: str, seed: int, times: list[float]) -> list[dict[str, Any]]:
    out = []
    for k, t in enumerate(times):
        kind = "bicycle" if k % 2 == 0 else "e_bike"
        src, dst = (
            (at("road", 34, 0.85), at("road", 3, 0.85))
            if k % 2
            else (at("road", 4, 0.7), at("road", 34, 0.7))
        )
        out.append({"id": f"{prefix}-rider-{k}", "kind": kind, "seed": seed + k, "rider": True, "enter_s": t,
                    "exit_s": t + 9, "from": src, "to": dst})  # fmt: skip
    return out


def cameras_doc(camera_id: str, name: str, start_time: str, dwell: dict[str, dict[str, float]], url: str,
                zones: list[str], loop: bool = False) -> dict[str, Any]:  # fmt: skip
    view = ViewSpec.model_validate(BASE_VIEW)
    cam, lay = build_camera(view, (960, 540)), build_layout(view)
    zone_docs = []
    for zid in zones:
        z = {"id": zid, **copy.deepcopy(ZONES[zid])}
        region = ZoneRegion.model_validate(BASE_VIEW["zone_regions"][zid])
        z["polygon"] = region_polygon(cam, lay, region)
        if zid in dwell:
            z["dwell_s"] = dwell[zid]
        zone_docs.append(z)
    return {
        "version": 1,
        "cameras": [
            {
                "id": camera_id,
                "name": name,
                "source": {"url": url, "loop": loop},
                "detect_fps": 5.0,
                "timezone": "Asia/Shanghai",
                "start_time": start_time,
                "location": {
                    "address": "人民路与滨河路口东北角",
                    "district": "示范区",
                    "grid_code": "DEMO-0101",
                },
                "zones": zone_docs,
            }
        ],
    }


ALL_ZONES = ["sidewalk-r", "blind-path", "bike-bay", "sidewalk-l", "night-market"]


def scenario(name: str, description: str, duration_s: float, actors: list[dict[str, Any]], *,
             must_not_alert: bool = False, start_time: str = "2024-06-03T10:00:00+08:00",
             time_of_day: str = "day", weather: str = "clear", dwell: dict | None = None,
             camera_id: str | None = None, loop: bool = False) -> dict[str, Any]:  # fmt: skip
    view = copy.deepcopy(BASE_VIEW)
    view["time_of_day"], view["weather"] = time_of_day, weather
    cam_id = camera_id or f"scn-{name.replace('_', '-')}"
    return {
        "name": name,
        "description": description,
        "duration_s": duration_s,
        "must_not_alert": must_not_alert,
        "view": view,
        "cameras": cameras_doc(
            cam_id, f"人民路东段 {name}", start_time, dwell or SUITE_DWELL_S, f"{name}.mp4", ALL_ZONES, loop
        ),  # fmt: skip
        "actors": actors,
    }


def vendor(duration_s: float, arrive_s: float, leave_s: float | None) -> list[dict[str, Any]]:
    stall = {"id": "vendor-cart", "kind": "vending_stall", "seed": 3, "look": {"variant": "cart", "canopy_kind": "flat"},
             "attendant": True, "enter_s": max(0.0, arrive_s - 15), "arrive_s": arrive_s,
             "from": at("right_sidewalk", 32, 0.3), "at": at("right_sidewalk", 13, 0.3)}  # fmt: skip
    if leave_s is not None:
        stall.update(leave_s=leave_s, exit_s=min(duration_s, leave_s + 20), to=at("right_sidewalk", 34, 0.3))
    return [stall]


def bikes_on_blind_path(times: list[float], leave_s: float | None = None) -> list[dict[str, Any]]:
    """Bikes parked at ``times``; with ``leave_s`` they are ridden away again (2 s apart)."""
    out = []
    for k, t in enumerate(times):
        z = 14.0 + 1.1 * k
        kind = "bicycle" if k != 1 else "e_bike"
        out.append({"id": f"parked-{k}", "kind": kind, "seed": 20 + k, "rider": True, "group": "blind-path-cluster",
                    "look": {"yaw": 1.2}, "enter_s": t - 8, "arrive_s": t,
                    "from": at("road", 32, 0.9), "at": at("blind_path", z, 0.5)})  # fmt: skip
        if leave_s is not None:
            out[-1].update(leave_s=leave_s + 2 * k, exit_s=leave_s + 2 * k + 8, to=at("road", 32, 0.9))
        out.append(
            walker(f"parker-{k}", 40 + k, t, t + 20, at("blind_path", z, 0.5), at("right_sidewalk", 34, 0.85))
        )
    return out


def garbage_drop(drop_s: float, cleared_s: float | None = None) -> list[dict[str, Any]]:
    """A bag dropped at ``drop_s``; with ``cleared_s`` it is gone (cleared away) from then on."""
    out = [
        {"id": "dropper", "kind": "person", "seed": 5, "carries": "garbage_bag", "enter_s": max(0.0, drop_s - 22),
         "arrive_s": drop_s - 4, "leave_s": drop_s + 2, "exit_s": drop_s + 25,
         "from": at("right_sidewalk", 32, 0.7), "at": at("right_sidewalk", 11.6, 0.55),
         "to": at("right_sidewalk", 4, 0.7)},
        {"id": "dropped-bag", "kind": "garbage", "seed": 6, "look": {"variant": "bags", "size_m": 1.0},
         "arrive_s": drop_s, "at": at("right_sidewalk", 11, 0.6)},
    ]  # fmt: skip
    if cleared_s is not None:
        out[-1]["leave_s"] = cleared_s
    return out


def barbecue(lit_s: float, packed_s: float | None = None) -> list[dict[str, Any]]:
    """A grill lit at ``lit_s``; with ``packed_s`` it is gone (packed away) from then on."""
    out = [
        {"id": "bbq-grill", "kind": "grill", "seed": 7, "look": {"variant": "trough", "length_m": 1.2, "lit": True},
         "smoke": True, "attendant": True, "arrive_s": lit_s, "at": at("right_sidewalk", 12, 0.3)},
        walker("bbq-cook", 8, max(0.0, lit_s - 20), lit_s, at("right_sidewalk", 30, 0.4), at("right_sidewalk", 12.6, 0.35)),
    ]  # fmt: skip
    if packed_s is not None:
        out[0]["leave_s"] = packed_s
    return out


def suite() -> dict[str, dict[str, Any]]:
    out = {}
    out["vendor_sidewalk"] = scenario(
        "vendor_sidewalk", "A vendor pushes a cart onto the sidewalk at 20 s and stays 4 min (street_vending).", 300,
        vendor(300, 20, 260) + passers("p", 100, 3, 25, 300) + riders("r", 200, [40, 130, 210]))  # fmt: skip
    out["bikes_blind_path"] = scenario(
        "bikes_blind_path", "Three riders park on the blind path at 15-35 s and leave the bikes (bike_misparking).",
        240, bikes_on_blind_path([15, 25, 35]) + passers("p", 110, 50, 40, 240))  # fmt: skip
    out["garbage_dropped"] = scenario(
        "garbage_dropped", "A passer-by drops a bag of garbage at 30 s and it stays (exposed_garbage).", 200,
        garbage_drop(30) + passers("p", 120, 60, 35, 200))  # fmt: skip
    out["night_barbecue"] = scenario(
        "night_barbecue", "A barbecue is lit on the sidewalk at 21:00 with smoke (open_air_barbecue).", 200,
        barbecue(20) + passers("p", 130, 40, 40, 200), start_time="2024-06-03T21:00:00+08:00",
        time_of_day="night")  # fmt: skip
    out["passers_by"] = scenario(
        "passers_by", "Only pedestrians, riders and a car pass through; nothing stops.", 150,
        passers("p", 140, 0, 12, 150) + riders("r", 240, [10, 35, 60, 85, 110])
        + [{"id": "car-0", "kind": "car", "seed": 1, "enter_s": 20, "exit_s": 28,
            "from": at("road", 34, 0.3), "to": at("road", 4, 0.3)}], must_not_alert=True)  # fmt: skip
    out["bike_in_bay"] = scenario(
        "bike_in_bay", "Bikes are parked inside the painted bike bay (allowed).", 180,
        [{"id": f"bay-bike-{k}", "kind": "bicycle" if k < 2 else "e_bike", "seed": 50 + k, "look": {"yaw": 1.3},
          "arrive_s": 10 + 12 * k, "at": at("bike_bay", 9.0 + 1.5 * k, 0.5)} for k in range(3)]
        + passers("p", 150, 5, 30, 180), must_not_alert=True)  # fmt: skip
    out["night_market"] = scenario(
        "night_market", "Stalls trade inside the designated night market during its hours (18:00-23:00).", 180,
        [{"id": f"market-stall-{k}", "kind": "vending_stall", "seed": 60 + k, "attendant": False,
          "look": {"variant": v, "canopy_kind": c}, "arrive_s": 5 + 5 * k,
          "at": at("night_market", 10.5 + 4 * k, 0.5)}
         for k, (v, c) in enumerate([("table", "flat"), ("cart", "none")])]
        + passers("p", 160, 0, 20, 180), start_time="2024-06-03T19:30:00+08:00", time_of_day="dusk",
        must_not_alert=True)  # fmt: skip
    out["garbage_carried"] = scenario(
        "garbage_carried", "People carry bags of garbage through the scene without leaving them.", 120,
        [walker("carrier-0", 70, 5, 40, at("right_sidewalk", 34, 0.7), at("right_sidewalk", 4, 0.6),
                carries="garbage_bag"),
         walker("carrier-1", 71, 45, 80, at("right_sidewalk", 5, 0.3), at("right_sidewalk", 34, 0.4),
                carries="garbage_bag"),
         walker("carrier-2", 72, 70, 105, at("left_sidewalk", 32, 0.5), at("left_sidewalk", 5, 0.5),
                carries="garbage_bag")], must_not_alert=True)  # fmt: skip
    out["umbrella_walkers"] = scenario(
        "umbrella_walkers", "People walk under umbrellas in the rain (umbrellas are not stalls).", 120,
        [walker(f"umbrella-{k}", 80 + k, 5 + 22 * k, 40 + 22 * k, *routes, umbrella=True)
         for k, routes in enumerate([(at("right_sidewalk", 34, 0.7), at("right_sidewalk", 4, 0.6)),
                                     (at("right_sidewalk", 5, 0.3), at("right_sidewalk", 34, 0.4)),
                                     (at("left_sidewalk", 32, 0.5), at("left_sidewalk", 5, 0.5)),
                                     (at("right_sidewalk", 34, 0.9), at("right_sidewalk", 5, 0.9))])],
        weather="rain", must_not_alert=True)  # fmt: skip
    out["bins_with_lids"] = scenario(
        "bins_with_lids", "Closed street bins stand at the curb all along; bins are not garbage.", 150,
        [{"id": f"bin-{k}", "kind": "trash_bin", "seed": 90 + k, "look": {"variant": v, "lid_open": False},
          "arrive_s": 0, "at": at("right_sidewalk", z, 0.12)}
         for k, (v, z) in enumerate([("wheelie", 9), ("twin", 12.5), ("round", 17)])]
        + passers("p", 170, 0, 25, 150), must_not_alert=True)  # fmt: skip
    return out


#: A demo clip's length: each stationary object leaves at DEMO_LEAVE_S and the view stays clear for more
#: than the rules' grace (20 s) before the clip loops, so every loop ends its violation and starts a new one
#: at the same place (a new case; yellow, then red escalation; "same place, earlier cases").
DEMO_CLIP_S = 130
DEMO_LEAVE_S = 75
#: Chinese camera names of the demo (the ids stay ASCII).
DEMO_CAMERA_NAMES = {
    "demo_vendor": "人民路东段·摊贩",
    "demo_bikes": "人民路东段·盲道",
    "demo_garbage": "人民路东段·垃圾",
    "demo_barbecue": "人民路东段·夜间烧烤",
}


def demo() -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Demo scenarios (short, low dwell) and the cameras file that runs them as looping clips."""
    d, n, gone = DEMO_DWELL_S, DEMO_CLIP_S, DEMO_LEAVE_S
    scn = {
        "demo_vendor": scenario("demo_vendor", "演示: 人行道流动摊贩（每轮离开后再来）", n,
                                vendor(n, 8, gone) + passers("p", 300, 2, 20, n), dwell=d,
                                camera_id="demo-vendor", loop=True),
        "demo_bikes": scenario("demo_bikes", "演示: 盲道乱停非机动车（每轮骑走后再停）", n,
                               bikes_on_blind_path([8, 12, 16], gone) + passers("p", 310, 20, 25, n), dwell=d,
                               camera_id="demo-bikes", loop=True),
        "demo_garbage": scenario("demo_garbage", "演示: 暴露垃圾（每轮清走后再扔）", n,
                                 garbage_drop(10, gone) + passers("p", 320, 30, 25, n),
                                 dwell=d, camera_id="demo-garbage", loop=True),
        "demo_barbecue": scenario("demo_barbecue", "演示: 夜间露天烧烤（每轮收摊后再摆）", n, barbecue(8, gone),
                                  start_time="2024-06-03T21:00:00+08:00", time_of_day="night", dwell=d,
                                  camera_id="demo-barbecue", loop=True),
    }  # fmt: skip
    cams = {"version": 1, "cameras": []}
    for name, s in scn.items():
        s["cameras"]["cameras"][0]["name"] = DEMO_CAMERA_NAMES[name]
        cam = copy.deepcopy(s["cameras"]["cameras"][0])
        cam["source"]["url"] = f"clips/{name}.mp4"
        cams["cameras"].append(cam)
    return scn, cams


def _dump(path: Path, doc: dict[str, Any], header: str) -> None:
    text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=110)
    path.write_text(header + text, encoding="utf-8")


def main() -> None:
    header = "# Generated by datasets/scenarios/build_suite.py; edit freely (zone polygons are checked).\n"
    for name, doc in suite().items():
        _dump(HERE / f"{name}.yaml", doc, header)
    scn, cams = demo()
    (DEMO_DIR / "scenarios").mkdir(parents=True, exist_ok=True)
    for name, doc in scn.items():
        _dump(DEMO_DIR / "scenarios" / f"{name}.yaml", doc, header)
    _dump(DEMO_DIR / "cameras.yaml", cams, "# Demo cameras: `urbaneye run --demo` renders the clips on demand\n"
          "# (datasets.demo.ensure_demo_clips) and rewrites clips/*.mp4 to where they were rendered.\n")  # fmt: skip


if __name__ == "__main__":
    main()
