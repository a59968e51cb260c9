"""Regenerate the static-object scenarios (``datasets/scenarios/static_*.yaml``, issue 14).

Objects the model has no class for (a pile of cardboard boxes, a folding table with goods, a mattress)
are left on the pavement by day, at dusk, at night and in rain, with walkers passing and standing,
lighting changes and a parked car; and must-not-alert variants (people chatting for ten minutes, street
lamps switching on, shadows sweeping). They use the street and zones of ``garbage_dropped.yaml``.
Run from the repository root:

    .venv/bin/python -m datasets.scenarios.build_static_suite
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
BASE = HERE / "garbage_dropped.yaml"
START_TIME = {"day": "2024-06-03T10:00:00+08:00", "dusk": "2024-06-03T18:40:00+08:00",
              "night": "2024-06-03T23:30:00+08:00"}  # fmt: skip


def place(region: str, z_m: float, across: float) -> dict[str, Any]:
    return {"region": region, "z_m": z_m, "across": across}


def walker(i: int, enter_s: float, side: str = "right", reverse: bool = False, lane: float = 0.8) -> dict:
    region = f"{side}_sidewalk"
    a, b = place(region, 34, lane), place(region, 4, lane)
    if reverse:
        a, b = b, a
    return {"id": f"walker-{i}", "kind": "person", "seed": 300 + i, "enter_s": enter_s,
            "exit_s": enter_s + 28, "from": a, "to": b}  # fmt: skip


def leaver(obj_id: str, kind: str, seed: int, at: dict[str, Any], t_s: float, look: dict | None = None,
           leave_s: float | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """A person brings ``kind`` to ``at``, it appears at ``t_s``, the person walks off."""
    person = {"id": f"{obj_id}-bringer", "kind": "person", "seed": seed + 50, "enter_s": t_s - 14,
              "arrive_s": t_s - 2, "leave_s": t_s + 3, "exit_s": t_s + 18,
              "from": place(at["region"], 34, 0.85), "at": {**at, "z_m": at["z_m"] + 0.8},
              "to": place(at["region"], 3, 0.85)}  # fmt: skip
    obj: dict[str, Any] = {"id": obj_id, "kind": kind, "seed": seed, "arrive_s": t_s, "at": at}
    if look:
        obj["look"] = look
    if leave_s is not None:
        obj["leave_s"] = leave_s
    return [person, obj]


def chatters(prefix: str, at: dict[str, Any], arrive_s: float, leave_s: float, n: int = 3) -> list[dict]:
    out = []
    for k in range(n):
        spot = {**at, "z_m": at["z_m"] + 0.5 * k, "across": min(0.95, at["across"] + 0.12 * (k % 2))}
        out.append({"id": f"{prefix}-{k}", "kind": "person", "seed": 400 + 7 * k + len(prefix), "enter_s": arrive_s - 12,
                    "arrive_s": arrive_s + k, "leave_s": leave_s + k, "exit_s": leave_s + k + 15,
                    "from": place(at["region"], 34, 0.7), "at": spot,
                    "to": place(at["region"], 3, 0.7)})  # fmt: skip
    return out


PARKED_CAR = {"id": "parked-car", "kind": "car", "seed": 3, "look": {"view": "side", "dir": 1},
              "arrive_s": 0, "at": place("road", 14, 0.9)}  # fmt: skip


def scenarios() -> list[dict[str, Any]]:
    """(name, description, duration_s, must_not_alert, time_of_day, weather, actors, light_events)."""
    rs, ls = "right_sidewalk", "left_sidewalk"
    car_shadow = {"kind": "slow_shadow", "start_s": 0, "end_s": 150, "strength": 0.35, "at": [0.55, 0.5],
                  "to": [0.63, 0.54], "radius": 0.12}  # fmt: skip
    return [
        ("static_cardboard_day", "A pile of cardboard boxes is left on the right pavement at 25 s and stays; "
         "walkers pass in front, a cloud dims the street, a parked car's shadow drifts.", 150, False, "day", "clear",
         [PARKED_CAR, *leaver("boxes", "cardboard", 11, place(rs, 12, 0.55), 25),
          walker(0, 40), walker(1, 55, reverse=True, lane=0.5), walker(2, 75, side="left"), walker(3, 95, lane=0.6),
          walker(4, 115, reverse=True)],
         [car_shadow, {"kind": "cloud", "start_s": 70, "end_s": 100, "ramp_s": 4, "strength": 0.35}]),
        ("static_table_dusk", "At dusk a folding table with goods is set up on the left pavement at 30 s and left; "
         "two people stand by it for 20 s, headlights sweep past.", 150, False, "dusk", "clear",
         [*leaver("table", "folding_table", 12, place(ls, 14, 0.5), 30),
          *chatters("talk", place(ls, 16.5, 0.5), 50, 70, n=2), walker(0, 80), walker(1, 100, side="left")],
         [{"kind": "headlights", "start_s": 60, "end_s": 66, "at": [0.2, 0.4], "to": [0.9, 0.9], "strength": 0.6},
          {"kind": "headlights", "start_s": 110, "end_s": 116, "at": [0.8, 0.35], "to": [0.1, 0.9],
           "strength": 0.6}]),
        ("static_mattress_night", "At night a mattress is left lying on the right pavement at 30 s; a lamp switches "
         "on, walkers pass.", 150, False, "night", "clear",
         [*leaver("mattress", "mattress", 13, place(rs, 10, 0.45), 30, look={"upright": False}),
          walker(0, 45), walker(1, 70, reverse=True, lane=0.3), walker(2, 100, side="left")],
         [{"kind": "lamp_on", "start_s": 80, "ramp_s": 1.0, "at": [0.7, 0.7], "radius": 0.25, "strength": 0.7}]),
        ("static_rain", "In rain, a pile of boxes (30 s) and an upright mattress (60 s) are left; walkers pass.",
         150, False, "day", "rain",
         [*leaver("boxes", "cardboard", 14, place(rs, 16, 0.7), 30),
          *leaver("mattress", "mattress", 15, place(rs, 21, 0.35), 60, look={"upright": True}),
          walker(0, 20, lane=0.4), walker(1, 50, reverse=True), walker(2, 85, side="left", lane=0.7),
          walker(3, 110, lane=0.5)],
         []),
        ("static_table_day", "By day a folding table is left at 20 s and taken away at 110 s; a parked car's "
         "shadow drifts, walkers pass and one stands by the table for 30 s.", 150, False, "day", "overcast",
         [PARKED_CAR, *leaver("table", "folding_table", 16, place(rs, 18, 0.5), 20, leave_s=110),
          *chatters("buyer", place(rs, 19.5, 0.75), 45, 75, n=1), walker(0, 30, side="left"),
          walker(1, 90, reverse=True, lane=0.4)],
         [car_shadow]),
        ("static_chatting", "Must not alert: three people stand chatting on the pavement for ten minutes; "
         "walkers pass.", 660, True, "day", "clear",
         [*chatters("chat", place(rs, 11, 0.5), 20, 620, n=3),
          *[walker(i, 30 + 60 * i, reverse=bool(i % 2), lane=0.85) for i in range(10)]],
         [{"kind": "cloud", "start_s": 200, "end_s": 320, "ramp_s": 10, "strength": 0.3}]),
        ("static_lamps", "Must not alert: at nightfall the street lamps switch on one after another; headlights "
         "sweep past, walkers pass.", 150, True, "night", "clear",
         [walker(0, 10), walker(1, 60, reverse=True, side="left"), walker(2, 100, lane=0.4)],
         [{"kind": "lamp_on", "start_s": 30, "at": [0.75, 0.75], "radius": 0.25, "strength": 0.8},
          {"kind": "lamp_on", "start_s": 45, "at": [0.25, 0.6], "radius": 0.2, "strength": 0.8},
          {"kind": "lamp_on", "start_s": 60, "at": [0.6, 0.35], "radius": 0.15, "strength": 0.6},
          {"kind": "headlights", "start_s": 80, "end_s": 86, "at": [0.2, 0.4], "to": [0.9, 0.9], "strength": 0.7},
          {"kind": "headlights", "start_s": 120, "end_s": 126, "at": [0.8, 0.35], "to": [0.1, 0.9],
           "strength": 0.7}]),
        ("static_shadows", "Must not alert: cloud shadows sweep across the street, the sun dims and returns, a "
         "parked car's shadow drifts; walkers pass.", 150, True, "day", "clear",
         [PARKED_CAR, walker(0, 15), walker(1, 50, reverse=True, lane=0.5), walker(2, 90, side="left")],
         [car_shadow,
          {"kind": "shadow_sweep", "start_s": 20, "end_s": 50, "at": [-0.3, 0.5], "to": [1.3, 0.6],
           "radius": 0.2, "strength": 0.45},
          {"kind": "shadow_sweep", "start_s": 70, "end_s": 110, "at": [1.3, 0.3], "to": [-0.3, 0.9],
           "radius": 0.3, "strength": 0.4},
          {"kind": "cloud", "start_s": 115, "end_s": 135, "ramp_s": 5, "strength": 0.4}]),
    ]  # fmt: skip


def build() -> list[Path]:
    base = yaml.safe_load(BASE.read_text(encoding="utf-8"))
    written = []
    for name, desc, duration_s, quiet, tod, weather, actors, lights in scenarios():
        doc = copy.deepcopy(base)
        doc.update(
            name=name, description=desc, duration_s=duration_s, must_not_alert=quiet, suite="static_objects"
        )
        doc["view"] = {**doc["view"], "time_of_day": tod, "weather": weather}
        cam = doc["cameras"]["cameras"][0]
        cam.update(id=f"scn-{name.replace('_', '-')}", name=f"人民路东段 {name}", start_time=START_TIME[tod])
        cam["source"]["url"] = f"{name}.mp4"
        doc["actors"] = actors
        doc["light_events"] = lights
        path = HERE / f"{name}.yaml"
        text = "# Generated by datasets/scenarios/build_static_suite.py; edit freely (zone polygons are checked).\n"
        path.write_text(text + yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for p in build():
        print(p)
