"""Procedural painters for the eight object classes and the unlabelled hard negatives.

Each kind has ``sample(rng) -> params`` (appearance, picked once so a video actor keeps its look) and
``draw(params, sx, sy, sd, phase) -> Sprite`` (deterministic given params; ``phase`` animates walkers
and smoke). Every class varies in shape, colour, size and pose, so no colour alone identifies it.
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from datasets.synth.sprite import Canvas, Sprite

Params = dict[str, Any]

#: Labelled classes, in class-id order (= vision.types.OBJECT_KINDS).
CLASS_NAMES: tuple[str, ...] = (
    "person",
    "bicycle",
    "e_bike",
    "vending_stall",
    "garbage",
    "trash_bin",
    "grill",
    "smoke",
)
#: Unlabelled things drawn to teach the model what a class is not.
DISTRACTORS: tuple[str, ...] = ("car", "umbrella", "tree", "pole", "bollard", "planter", "cone", "sign_board")
#: Fixed look-alikes for scenario videos only (never drawn into training images): a rock at a lawn edge
#: and a street bench, which a detector may take for garbage or a stall (false-alarm memory, issue 12).
LOOKALIKES: tuple[str, ...] = ("rock", "bench")
#: Objects the detector has no class for, for the static-object detector's scenario videos only (issue 14):
#: a pile of cardboard boxes, a folding table with goods, a mattress left on the pavement.
UNKNOWN_OBJECTS: tuple[str, ...] = ("cardboard", "folding_table", "mattress")


def hsv(
    rng: np.random.Generator, s: tuple[float, float] = (0.3, 1.0), v: tuple[float, float] = (0.3, 1.0)
) -> tuple[int, int, int]:
    """A random BGR colour with saturation/value in the given ranges."""
    r, g, b = colorsys.hsv_to_rgb(float(rng.random()), float(rng.uniform(*s)), float(rng.uniform(*v)))
    return (int(b * 255), int(g * 255), int(r * 255))


def grey(rng: np.random.Generator, lo: int = 20, hi: int = 230) -> tuple[int, int, int]:
    g = int(rng.integers(lo, hi))
    return (g, g, min(255, g + int(rng.integers(0, 10))))


def shade(c: tuple[int, int, int], f: float) -> tuple[int, int, int]:
    return tuple(int(min(255, max(0, v * f))) for v in c)  # type: ignore[return-value]


def _rot(yaw: float) -> Callable[[float, float, float], tuple[float, float, float]]:
    """Local (along, up, across) -> canvas (x, y, d) for an object turned by ``yaw`` (0 = side-on)."""
    ca, sa = math.cos(yaw), math.sin(yaw)

    def f(l: float, y: float, z: float = 0.0) -> tuple[float, float, float]:  # noqa: E741
        return (l * ca - z * sa, y, l * sa + z * ca)

    return f


# ----------------------------------------------------------------------------------------------- person
SKIN = [(150, 180, 225), (120, 160, 210), (100, 140, 190), (80, 110, 160), (170, 200, 235)]
HAIR = [(20, 20, 25), (30, 35, 50), (40, 60, 90), (120, 130, 140), (15, 15, 15)]


def sample_person(rng: np.random.Generator) -> Params:
    child = rng.random() < 0.1
    return {
        "height_m": float(rng.uniform(1.0, 1.35) if child else rng.uniform(1.52, 1.88)),
        "build": float(rng.uniform(0.85, 1.25)),
        "facing": str(rng.choice(["front", "back", "side", "side", "three_quarter"])),
        "dir": 1 if rng.random() < 0.5 else -1,
        "walking": bool(rng.random() < 0.65),
        "top": hsv(rng, (0, 0.9), (0.15, 0.95)),
        "bottom": hsv(rng, (0, 0.6), (0.1, 0.6)) if rng.random() < 0.8 else hsv(rng),
        "skirt": bool(rng.random() < 0.15),
        "long_sleeve": bool(rng.random() < 0.6),
        "skin": SKIN[rng.integers(len(SKIN))],
        "hair": HAIR[rng.integers(len(HAIR))],
        "hat": hsv(rng) if rng.random() < 0.2 else None,
        "shoes": grey(rng, 10, 200),
        "bag": str(rng.choice(["none", "none", "handbag", "plastic", "backpack", "shoulder"])),
        "bag_colour": hsv(rng, (0, 1), (0.1, 1)) if rng.random() < 0.7 else (245, 245, 245),
        "pose": "stand",
        "arms_up": bool(rng.random() < 0.08),
    }


def draw_person(p: Params, sx: float, sy: float, sd: float, phase: float = 0.0) -> Sprite:
    h = p["height_m"]
    bw = p["build"]
    cv = Canvas(sx, sy, sd, 0.45 * h, h + 0.1, 0.2, 0.2)
    facing = p["facing"]
    side = facing in ("side", "three_quarter")
    k = p["dir"]
    swing = math.sin(phase) * (0.28 if p["walking"] else 0.0)
    hip_y, sh_y = 0.52 * h, 0.81 * h
    half_sh = (0.13 if not side else 0.07 if facing == "side" else 0.1) * h * bw / 1.7 * 1.7 / 1.7
    half_hip = half_sh * 0.75
    leg_w = 0.075 * h * bw
    if p["pose"] == "ride":
        # Sitting on a saddle: thighs forward, shins down to the pedals.
        knee = (k * 0.25 * h, 0.42 * h)
        cv.line((0, hip_y), knee, p["bottom"], leg_w)
        cv.line(knee, (k * 0.18 * h, 0.12 * h + 0.05 * math.sin(phase) * h), p["bottom"], leg_w * 0.85)
    elif p["skirt"]:
        for sgn in (-1, 1):
            cv.line(
                (sgn * half_hip * 0.5, hip_y * 0.6),
                (sgn * half_hip * 0.5 + (swing * 0.3 * sgn if side else 0), 0.03),
                p["skin"],
                leg_w * 0.7,
            )
        cv.poly(
            [
                (-half_hip, hip_y + 0.02),
                (half_hip, hip_y + 0.02),
                (half_hip * 1.5, hip_y * 0.55),
                (-half_hip * 1.5, hip_y * 0.55),
            ],
            p["bottom"],
        )
    else:
        for sgn in (-1, 1):
            if side:
                foot_x = k * sgn * swing * 0.55 * h * 0.5
                knee = (foot_x * 0.5 + k * 0.03 * h * max(0, sgn * math.sin(phase)), hip_y * 0.5)
                hip = (0.0, hip_y)
            else:
                foot_x = sgn * (half_hip * 0.9 + 0.02)
                knee = (sgn * half_hip * 0.8, hip_y * 0.5)
                hip = (sgn * half_hip * 0.55, hip_y)
            cv.line(hip, knee, p["bottom"], leg_w)
            cv.line(knee, (foot_x, 0.05), p["bottom"], leg_w * 0.9)
            cv.line(
                (foot_x - 0.02 * (not side), 0.025),
                (foot_x + (k * 0.09 if side else 0.02), 0.025),
                p["shoes"],
                0.05,
            )
    sleeve = p["top"] if p["long_sleeve"] else p["skin"]
    arm_w = 0.06 * h * bw

    def arm(sgn: int) -> tuple[float, float]:
        sh = (sgn * half_sh * (0.9 if not side else 0.3), sh_y - 0.03 * h)
        if p["arms_up"] and sgn > 0:
            hand = (sh[0] + 0.05 * h, sh_y + 0.2 * h)
        elif p["pose"] == "ride":
            hand = (k * 0.3 * h, 0.62 * h)
        elif side:
            hand = (-k * sgn * swing * 0.35 * h, hip_y - 0.02 * h)
        else:
            hand = (sgn * (half_sh + 0.03 * h), hip_y - 0.02 * h)
        elbow = ((sh[0] + hand[0]) / 2 + sgn * 0.02 * h, (sh[1] + hand[1]) / 2)
        cv.line(sh, elbow, p["top"], arm_w)
        cv.line(elbow, hand, sleeve, arm_w * 0.85)
        cv.oval((hand[0], hand[1]), 0.03 * h, 0.035 * h, p["skin"])
        return hand

    bag = p["bag"]
    if bag == "backpack" and facing != "front":
        bx = -k * 0.12 * h if side else 0.0
        cv.poly(
            [
                (bx - 0.1 * h, sh_y - 0.02 * h),
                (bx + 0.1 * h, sh_y - 0.02 * h),
                (bx + 0.1 * h, hip_y + 0.05 * h),
                (bx - 0.1 * h, hip_y + 0.05 * h),
            ],
            p["bag_colour"],
        )
    hands = [arm(-1)]
    torso = [
        (-half_sh, sh_y),
        (half_sh, sh_y),
        (half_hip * 1.05, hip_y - 0.02 * h),
        (-half_hip * 1.05, hip_y - 0.02 * h),
    ]
    cv.poly(torso, p["top"])
    if bag == "shoulder":
        cv.line((-half_sh * 0.8, sh_y), (half_hip, hip_y + 0.02 * h), shade(p["bag_colour"], 0.7), 0.02 * h)
        cv.poly(
            [
                (half_hip - 0.02 * h, hip_y + 0.08 * h),
                (half_hip + 0.12 * h, hip_y + 0.08 * h),
                (half_hip + 0.12 * h, hip_y - 0.05 * h),
                (half_hip - 0.02 * h, hip_y - 0.05 * h),
            ],
            p["bag_colour"],
        )
    cv.line((0, sh_y), (0, sh_y + 0.04 * h), p["skin"], 0.05 * h)
    head_c = (0.0 if not side else k * 0.01 * h, 0.925 * h)
    cv.oval(head_c, 0.062 * h, 0.075 * h, p["skin"])
    if facing == "back":
        cv.oval(head_c, 0.064 * h, 0.077 * h, p["hair"])
    else:
        cv.oval(
            (head_c[0] - (k * 0.015 * h if side else 0), head_c[1] + 0.02 * h),
            0.064 * h,
            0.06 * h,
            p["hair"],
            arc=(180, 360),
        )
    if p["hat"] is not None:
        cv.oval((head_c[0], head_c[1] + 0.045 * h), 0.08 * h, 0.035 * h, p["hat"], arc=(180, 360))
    hands.append(arm(1))
    hx, hy = hands[1]
    if bag == "handbag":
        cv.poly(
            [
                (hx - 0.05 * h, hy - 0.01 * h),
                (hx + 0.06 * h, hy - 0.01 * h),
                (hx + 0.07 * h, hy - 0.11 * h),
                (hx - 0.06 * h, hy - 0.11 * h),
            ],
            p["bag_colour"],
        )
    elif bag == "plastic":  # a carried bag: part of the person, never garbage
        cv.oval((hx, hy - 0.08 * h), 0.055 * h, 0.075 * h, p["bag_colour"])
        cv.line((hx - 0.02 * h, hy), (hx + 0.02 * h, hy - 0.03 * h), p["bag_colour"], 0.012 * h)
    return cv.finish(0.2)


# ---------------------------------------------------------------------------------------------- bicycle
LIVERIES = [
    (20, 200, 250),
    (30, 120, 245),
    (200, 120, 20),
    (80, 190, 40),
    (180, 200, 60),
    (60, 60, 220),
    (230, 230, 230),
]


def sample_bicycle(rng: np.random.Generator) -> Params:
    shared = rng.random() < 0.5
    return {
        "yaw": float(rng.uniform(-math.pi, math.pi)),
        "wheel_r": float(rng.uniform(0.27, 0.36)),
        "wheelbase": float(rng.uniform(0.95, 1.12)),
        "frame": LIVERIES[rng.integers(len(LIVERIES))]
        if shared
        else (hsv(rng) if rng.random() < 0.6 else grey(rng, 15, 200)),
        "shared": shared,
        "basket": bool(shared or rng.random() < 0.3),
        "disc": bool(shared and rng.random() < 0.35),
        "disc_colour": hsv(rng, (0.6, 1), (0.6, 1)),
        "fenders": bool(shared or rng.random() < 0.4),
        "step_through": bool(rng.random() < 0.35),
        "seat_h": float(rng.uniform(0.85, 1.0)),
        "fallen": bool(rng.random() < 0.04),
    }


def _bike_points(p: Params) -> dict[str, tuple[float, float]]:
    wb, r = p["wheelbase"], p["wheel_r"]
    seat = p["seat_h"]
    return {
        "rear": (-wb / 2, r),
        "front": (wb / 2, r),
        "bb": (-0.06, 0.3),
        "seat": (-0.2, seat - 0.05),
        "head": (wb / 2 - 0.14, seat - 0.02),
        "head_low": (wb / 2 - 0.1, seat - 0.2),
        "bar": (wb / 2 - 0.18, seat + 0.1),
    }


def draw_bicycle(p: Params, sx: float, sy: float, sd: float, phase: float = 0.0) -> Sprite:
    wb, r = p["wheelbase"], p["wheel_r"]
    cv = Canvas(sx, sy, sd, 0.5 * wb + r + 0.3, 1.25, wb / 2 + 0.5, wb / 2 + 0.5)
    R = _rot(p["yaw"])
    q = _bike_points(p)
    tyre = (25, 25, 28)
    frame = p["frame"]
    ft = 0.035 if not p["shared"] else 0.05

    def L(name: str, z: float = 0.0) -> tuple[float, float, float]:
        a, b = q[name]
        return R(a, b, z)

    def wheel(name: str) -> None:
        c = L(name)
        cv.ring(c, r, p["yaw"], tyre, 0.045, fill=p["disc_colour"] if p["disc"] else None)
        if not p["disc"]:
            cv.ring(c, r * 0.85, p["yaw"], (150, 150, 150), 0.012)
            for t in range(0, 180, 45):
                a = math.radians(t)
                cv.line(
                    R(q[name][0] + r * 0.85 * math.cos(a), r + r * 0.85 * math.sin(a)),
                    R(q[name][0] - r * 0.85 * math.cos(a), r - r * 0.85 * math.sin(a)),
                    (170, 170, 170),
                    0.006,
                )
        if p["fenders"]:
            arc = [
                R(q[name][0] + (r + 0.04) * math.cos(a), r + (r + 0.04) * math.sin(a))
                for a in np.linspace(0.3, 2.8, 8)
            ]
            cv.polyline(arc, frame, 0.03)

    wheel("rear")
    # Bars across the bike (handlebar, pedals) use the across axis so a head-on view is a T.
    cv.line(L("bb", -0.1), L("bb", 0.1), (40, 40, 40), 0.03)
    cv.line(L("rear"), L("bb"), frame, ft)
    cv.line(L("rear"), L("seat"), frame, ft)
    cv.line(L("bb"), L("seat"), frame, ft)
    cv.line(L("bb"), L("head_low" if p["step_through"] else "head"), frame, ft * 1.1)
    if not p["step_through"]:
        cv.line(L("seat"), L("head"), frame, ft)
    cv.line(L("head"), L("front"), frame, ft)
    wheel("front")
    sx0, sy0 = q["seat"]
    cv.poly(
        [R(sx0 - 0.12, sy0 + 0.06, -0.06), R(sx0 + 0.1, sy0 + 0.06, 0), R(sx0 - 0.12, sy0 + 0.06, 0.06)],
        (30, 30, 30),
    )
    cv.line(R(sx0 - 0.12, sy0 + 0.07), R(sx0 + 0.1, sy0 + 0.07), (30, 30, 30), 0.05)
    cv.line(L("head"), L("bar"), (50, 50, 50), 0.03)
    bx, by = q["bar"]
    cv.line(R(bx, by, -0.28), R(bx, by, 0.28), (40, 40, 40), 0.03)
    if p["basket"]:
        fx = wb / 2 - 0.02
        bc = frame if p["shared"] else grey(np.random.default_rng(int(p["wheel_r"] * 1e6)), 30, 200)
        for z0, z1 in ((-0.17, 0.17),):
            pts = [
                R(fx - 0.12, by - 0.05, z0),
                R(fx + 0.14, by - 0.05, z0),
                R(fx + 0.14, by - 0.05, z1),
                R(fx - 0.12, by - 0.05, z1),
            ]
            cv.poly(pts, shade(bc, 0.6))
            cv.poly(
                [
                    R(fx - 0.12, by - 0.05, z1),
                    R(fx + 0.14, by - 0.05, z1),
                    R(fx + 0.14, by - 0.3, z1),
                    R(fx - 0.12, by - 0.3, z1),
                ],
                bc,
            )
            cv.poly(
                [
                    R(fx + 0.14, by - 0.05, z0),
                    R(fx + 0.14, by - 0.05, z1),
                    R(fx + 0.14, by - 0.3, z1),
                    R(fx + 0.14, by - 0.3, z0),
                ],
                shade(bc, 0.85),
            )
    return cv.finish(0.1)


# ----------------------------------------------------------------------------------------------- e-bike
def sample_e_bike(rng: np.random.Generator) -> Params:
    variant = str(rng.choice(["scooter", "scooter", "moped", "tricycle"]))
    return {
        "variant": variant,
        "yaw": float(rng.uniform(-math.pi, math.pi)),
        "wheel_r": float(rng.uniform(0.2, 0.27)),
        "length": float(rng.uniform(1.45, 1.8)) if variant != "tricycle" else float(rng.uniform(1.8, 2.4)),
        "body": hsv(rng, (0.2, 1), (0.3, 1)) if rng.random() < 0.75 else grey(rng, 20, 240),
        "trim": grey(rng, 20, 80),
        "box": str(rng.choice(["none", "none", "delivery", "crate"])),
        "box_colour": [(30, 200, 250), (230, 150, 30), (40, 40, 220), (60, 60, 60)][rng.integers(4)],
        "cabin": bool(variant == "tricycle" and rng.random() < 0.35),
        "bed_colour": hsv(rng, (0.3, 1), (0.3, 0.9)),
        "windshield": bool(rng.random() < 0.3),
    }


def draw_e_bike(p: Params, sx: float, sy: float, sd: float, phase: float = 0.0) -> Sprite:
    length, r = p["length"], p["wheel_r"]
    tri = p["variant"] == "tricycle"
    cv = Canvas(sx, sy, sd, length / 2 + 0.4, 1.8 if p["cabin"] else 1.4, length / 2 + 0.7, length / 2 + 0.7)
    R = _rot(p["yaw"])
    body, trim = p["body"], p["trim"]
    tyre = (22, 22, 22)
    rx, fx = -length / 2 + r, length / 2 - r
    rear_zs = (-0.45, 0.45) if tri else (0.0,)
    for z in rear_zs:
        if z <= 0:
            cv.ring(R(rx, r, z), r, p["yaw"], tyre, 0.09, fill=(60, 60, 60))
    if tri:
        bed0, bed1 = rx - 0.35, rx + 0.65
        bh = 0.7
        cv.poly(
            [R(bed0, bh, -0.5), R(bed1, bh, -0.5), R(bed1, bh, 0.5), R(bed0, bh, 0.5)],
            shade(p["bed_colour"], 0.7),
        )
        for z in (-0.5, 0.5):
            cv.poly(
                [R(bed0, r + 0.05, z), R(bed1, r + 0.05, z), R(bed1, bh, z), R(bed0, bh, z)], p["bed_colour"]
            )
        for end in (bed0, bed1):
            cv.poly(
                [R(end, r + 0.05, -0.5), R(end, r + 0.05, 0.5), R(end, bh, 0.5), R(end, bh, -0.5)],
                shade(p["bed_colour"], 0.85),
            )
        if p["cabin"]:
            cv.poly(
                [
                    R(bed0, 1.65, -0.5),
                    R(bed1 + 0.5, 1.65, -0.5),
                    R(bed1 + 0.5, 1.65, 0.5),
                    R(bed0, 1.65, 0.5),
                ],
                shade(body, 0.8),
            )
            for end in (bed0, bed1 + 0.5):
                cv.line(R(end, bh, 0.5), R(end, 1.65, 0.5), trim, 0.04)
        cv.line(R(bed1, 0.45), R(fx, r), trim, 0.06)
        cv.poly([R(bed1, 0.5), R(bed1 + 0.2, 0.95), R(bed1 + 0.35, 0.95), R(bed1 + 0.25, 0.5)], (30, 30, 30))
    else:
        # Step-through scooter body: rear cowl to the seat, low footboard, front shield.
        cv.poly(
            [
                R(rx - 0.25, r + 0.15),
                R(rx - 0.05, 0.78),
                R(rx + 0.45, 0.75),
                R(rx + 0.55, 0.35),
                R(fx - 0.15, 0.32),
                R(fx - 0.15, r + 0.05),
                R(rx - 0.2, r + 0.05),
            ],
            body,
        )
        cv.poly(
            [
                R(rx - 0.15, 0.8, -0.13),
                R(rx + 0.45, 0.8, -0.13),
                R(rx + 0.45, 0.8, 0.13),
                R(rx - 0.15, 0.8, 0.13),
            ],
            (25, 25, 25),
        )
        cv.line(R(rx - 0.15, 0.82), R(rx + 0.45, 0.82), (25, 25, 25), 0.09)
        if p["variant"] == "moped":
            cv.poly(
                [R(rx + 0.45, 0.75), R(fx - 0.1, 0.9), R(fx - 0.05, 0.6), R(rx + 0.5, 0.45)],
                shade(body, 0.85),
            )
    shield_x = fx - 0.12
    cv.poly(
        [
            R(shield_x - 0.12, 0.3, -0.2),
            R(shield_x + 0.02, 1.0, -0.17),
            R(shield_x + 0.02, 1.0, 0.17),
            R(shield_x - 0.12, 0.3, 0.2),
        ],
        shade(body, 0.9),
    )
    cv.line(R(shield_x - 0.12, 0.32), R(shield_x + 0.04, 1.02), body, 0.12)
    cv.line(R(shield_x + 0.02, 0.95), R(fx, r), trim, 0.05)
    cv.line(R(shield_x, 1.05, -0.33), R(shield_x, 1.05, 0.33), (30, 30, 30), 0.035)
    for z in (-0.26, 0.26):
        cv.line(R(shield_x, 1.05, z), R(shield_x - 0.03, 1.22, z * 1.1), (60, 60, 60), 0.012)
        cv.oval(R(shield_x - 0.03, 1.22, z * 1.1), 0.04, 0.03, (60, 60, 60))
    cv.oval(R(shield_x + 0.06, 0.95), 0.06, 0.05, (210, 230, 240), glow=180)
    if p["windshield"]:
        cv.poly(
            [
                R(shield_x, 1.05, -0.18),
                R(shield_x - 0.05, 1.45, -0.15),
                R(shield_x - 0.05, 1.45, 0.15),
                R(shield_x, 1.05, 0.18),
            ],
            (200, 190, 180),
            alpha=150,
        )
    if p["box"] != "none" and not tri:
        s0 = 0.42
        bc = p["box_colour"] if p["box"] == "delivery" else (60, 60, 200)
        bx0 = rx - 0.35
        cv.poly(
            [
                R(bx0, 0.85 + s0, -s0 / 2),
                R(bx0 + s0, 0.85 + s0, -s0 / 2),
                R(bx0 + s0, 0.85 + s0, s0 / 2),
                R(bx0, 0.85 + s0, s0 / 2),
            ],
            shade(bc, 0.8),
        )
        cv.poly(
            [
                R(bx0, 0.85, s0 / 2),
                R(bx0 + s0, 0.85, s0 / 2),
                R(bx0 + s0, 0.85 + s0, s0 / 2),
                R(bx0, 0.85 + s0, s0 / 2),
            ],
            bc,
        )
        cv.poly(
            [
                R(bx0, 0.85, -s0 / 2),
                R(bx0, 0.85, s0 / 2),
                R(bx0, 0.85 + s0, s0 / 2),
                R(bx0, 0.85 + s0, -s0 / 2),
            ],
            shade(bc, 0.9),
        )
    cv.ring(R(fx, r), r, p["yaw"], tyre, 0.09, fill=(60, 60, 60))
    for z in rear_zs:
        if z > 0:
            cv.ring(R(rx, r, z), r, p["yaw"], tyre, 0.09, fill=(60, 60, 60))
    return cv.finish(0.15)


# ------------------------------------------------------------------------------------------ vending stall
def sample_vending_stall(rng: np.random.Generator) -> Params:
    return {
        "variant": str(rng.choice(["cart", "table", "umbrella", "tricycle", "rack"])),
        "width_m": float(rng.uniform(1.0, 2.0)),
        "depth_m": float(rng.uniform(0.6, 1.0)),
        "yaw_small": float(rng.uniform(-0.4, 0.4)),
        "body": hsv(rng, (0.1, 1), (0.3, 1)),
        "cloth": hsv(rng, (0.4, 1), (0.4, 1)),
        "canopy": [hsv(rng, (0.6, 1), (0.6, 1)), (235, 235, 235) if rng.random() < 0.6 else hsv(rng)],
        "canopy_kind": str(rng.choice(["none", "flat", "umbrella", "flat"])),
        "goods": str(rng.choice(["fruit", "boxes", "clothes", "snacks", "mixed"])),
        "lamp": bool(rng.random() < 0.5),
        "seed": int(rng.integers(1 << 30)),
    }


def _goods(
    cv: Canvas,
    rng: np.random.Generator,
    kind: str,
    x0: float,
    x1: float,
    y: float,
    d0: float,
    d1: float,
    n: int,
) -> None:
    base_cols = [hsv(rng, (0.5, 1), (0.5, 1)) for _ in range(4)]
    for _ in range(n):
        x = float(rng.uniform(x0 + 0.05, x1 - 0.05))
        d = float(rng.uniform(d0, d1))
        c = base_cols[rng.integers(len(base_cols))]
        k = kind if kind != "mixed" else str(rng.choice(["fruit", "boxes", "clothes", "snacks"]))
        if k == "fruit":
            rr = float(rng.uniform(0.04, 0.08))
            cv.oval((x, y + rr, d), rr, rr, c)
        elif k == "boxes":
            w, hh = float(rng.uniform(0.1, 0.3)), float(rng.uniform(0.08, 0.25))
            cv.box(x - w / 2, x + w / 2, y, y + hh, d, d + w * 0.8, c, shade(c, 1.2))
        elif k == "clothes":
            w = float(rng.uniform(0.15, 0.3))
            cv.poly(
                [
                    (x - w / 2, y, d),
                    (x + w / 2, y, d),
                    (x + w / 2 * 0.8, y + 0.05, d),
                    (x - w / 2 * 0.8, y + 0.05, d),
                ],
                c,
            )
        else:
            w = float(rng.uniform(0.08, 0.16))
            cv.poly([(x - w / 2, y, d), (x + w / 2, y, d), (x, y + w * 1.5, d)], c)


def draw_vending_stall(p: Params, sx: float, sy: float, sd: float, phase: float = 0.0) -> Sprite:
    rng = np.random.default_rng(p["seed"])
    w, dep = p["width_m"], p["depth_m"]
    var = p["variant"]
    canopy = p["canopy_kind"] if var != "umbrella" else "umbrella"
    top_h = 2.4 if canopy != "none" else 1.3
    if canopy == "umbrella":
        top_h = 2.5
    half = max(w / 2 + 0.2, 1.3 if canopy == "umbrella" else 0)
    cv = Canvas(sx, sy, sd, half + 0.2, top_h + 0.2, dep + 1.3, 1.3)
    x0, x1 = -w / 2, w / 2
    body, cloth = p["body"], p["cloth"]
    table_h = float(rng.uniform(0.7, 0.9))
    if canopy == "umbrella" and var != "umbrella":
        canopy = "flat"
    pole = (90, 90, 90)
    if canopy == "flat":
        for xx in (x0, x1):
            cv.line((xx, 0, dep), (xx, top_h, dep), pole, 0.035)
    if var == "cart":
        wr = 0.18
        cv.box(x0, x1, wr + 0.05, table_h, 0, dep, body, shade(body, 1.15))
        cv.poly(
            [
                (x0 + 0.08, table_h - 0.1),
                (x1 - 0.08, table_h - 0.1),
                (x1 - 0.08, wr + 0.15),
                (x0 + 0.08, wr + 0.15),
            ],
            shade(body, 0.8),
        )
        cv.box(
            x0 + 0.05,
            x1 - 0.05,
            table_h,
            table_h + 0.35,
            dep * 0.2,
            dep * 0.8,
            (190, 200, 200),
            (210, 220, 220),
        )
        _goods(
            cv,
            rng,
            p["goods"],
            x0 + 0.1,
            x1 - 0.1,
            table_h + 0.02,
            dep * 0.25,
            dep * 0.75,
            int(rng.integers(4, 10)),
        )
        for xx in (x0 + 0.25, x1 - 0.25):
            cv.oval((xx, wr), wr, wr, (30, 30, 30))
            cv.oval((xx, wr), wr * 0.4, wr * 0.4, (150, 150, 150))
        cv.line((x1, table_h), (x1 + 0.3, table_h + 0.15), pole, 0.03)
    elif var in ("table", "umbrella"):
        for xx, dd in ((x0 + 0.05, dep), (x1 - 0.05, dep)):
            cv.line((xx, 0, dd), (xx, table_h, dd), (60, 60, 60), 0.04)
        cv.poly(
            [(x0, table_h, 0), (x1, table_h, 0), (x1, table_h, dep), (x0, table_h, dep)], shade(cloth, 1.1)
        )
        cv.poly([(x0, table_h, 0), (x1, table_h, 0), (x1, table_h - 0.3, 0), (x0, table_h - 0.3, 0)], cloth)
        for xx in (x0 + 0.05, x1 - 0.05):
            cv.line((xx, 0, 0), (xx, table_h - 0.3, 0), (60, 60, 60), 0.04)
        if rng.random() < 0.6:  # crates under the table
            cc = hsv(rng, (0.5, 1), (0.4, 0.9))
            cv.box(x0 + 0.1, x0 + 0.5, 0, 0.3, -0.1, 0.3, cc, shade(cc, 1.2))
        _goods(cv, rng, p["goods"], x0, x1, table_h, 0.05, dep * 0.9, int(rng.integers(6, 16)))
    elif var == "tricycle":
        r = 0.25
        cv.oval((x0 + 0.2, r), r * 0.5, r, (25, 25, 25))
        cv.box(x0, x1, r + 0.1, table_h, 0, dep, body, shade(body, 1.1))
        _goods(cv, rng, p["goods"], x0, x1, table_h, 0.05, dep * 0.9, int(rng.integers(5, 12)))
        cv.oval((x1 + 0.45, r), r * 0.5, r, (25, 25, 25))
        cv.line((x1, r + 0.2), (x1 + 0.45, r), (40, 40, 40), 0.05)
        cv.line((x1 + 0.4, r), (x1 + 0.35, table_h + 0.35), (40, 40, 40), 0.04)
        cv.line((x1 + 0.35, table_h + 0.35, -0.2), (x1 + 0.35, table_h + 0.35, 0.2), (40, 40, 40), 0.04)
        cv.oval((x1 + 0.45, r), r * 0.4, r * 0.9, (25, 25, 25))
    else:  # rack of hanging goods
        cv.line((x0, 0), (x0, 1.6), pole, 0.04)
        cv.line((x1, 0), (x1, 1.6), pole, 0.04)
        cv.line((x0, 1.6), (x1, 1.6), pole, 0.04)
        for i in range(int(rng.integers(4, 9))):
            xx = x0 + (i + 0.5) * w / 9 + float(rng.uniform(-0.03, 0.03))
            c = hsv(rng, (0.4, 1), (0.4, 1))
            ln = float(rng.uniform(0.5, 1.0))
            cv.poly([(xx - 0.08, 1.58), (xx + 0.08, 1.58), (xx + 0.1, 1.58 - ln), (xx - 0.1, 1.58 - ln)], c)
        cv.poly([(x0, 0.5, 0), (x1, 0.5, 0), (x1, 0.5, dep), (x0, 0.5, dep)], shade(cloth, 1.1))
        _goods(cv, rng, p["goods"], x0, x1, 0.5, 0.05, dep * 0.9, int(rng.integers(4, 9)))
    if canopy == "flat":
        c0, c1 = p["canopy"]
        cv.poly(
            [
                (x0 - 0.1, top_h, -0.05),
                (x1 + 0.1, top_h, -0.05),
                (x1 + 0.1, top_h, dep + 0.05),
                (x0 - 0.1, top_h, dep + 0.05),
            ],
            c0,
        )
        n = int(rng.integers(3, 8))
        for i in range(n):
            a = x0 - 0.1 + (w + 0.2) * i / n
            cv.poly(
                [
                    (a, top_h, -0.05),
                    (a + (w + 0.2) / n, top_h, -0.05),
                    (a + (w + 0.2) / n, top_h - 0.18, -0.05),
                    (a, top_h - 0.18, -0.05),
                ],
                c0 if i % 2 else c1,
            )
        for xx in (x0, x1):
            cv.line((xx, 0, 0), (xx, top_h, 0), pole, 0.035)
    elif canopy == "umbrella":
        c0, c1 = p["canopy"]
        rad = max(1.0, w / 2 + 0.25)
        cx = 0.1
        cv.line((cx, 0, dep / 2), (cx, top_h, dep / 2), pole, 0.035)
        segs = 8
        for i in range(segs):
            a0, a1 = math.pi * i / segs, math.pi * (i + 1) / segs
            pts = [
                (cx, top_h + 0.05, dep / 2),
                (
                    cx + rad * math.cos(a0),
                    top_h - 0.45 + 0.1 * math.sin(a0),
                    dep / 2 - rad * math.sin(a0) * 0.5,
                ),
                (
                    cx + rad * math.cos(a1),
                    top_h - 0.45 + 0.1 * math.sin(a1),
                    dep / 2 - rad * math.sin(a1) * 0.5,
                ),
            ]
            cv.poly(pts, c0 if i % 2 else c1)
    if p["lamp"]:
        ly = top_h - 0.25 if canopy != "none" else table_h + 0.5
        cv.line((0, ly + 0.2), (0, ly), (40, 40, 40), 0.01)
        cv.oval((0, ly), 0.05, 0.06, (200, 240, 255), glow=255)
    return cv.finish(0.15)


# ---------------------------------------------------------------------------------------------- garbage
def sample_garbage(rng: np.random.Generator) -> Params:
    return {
        "variant": str(rng.choice(["pile", "bags", "bags", "litter", "construction"])),
        "size_m": float(rng.uniform(0.5, 1.6)),
        "seed": int(rng.integers(1 << 30)),
    }


def _blob(
    cv: Canvas,
    rng: np.random.Generator,
    cx: float,
    cy: float,
    d: float,
    rx: float,
    ry: float,
    c: tuple[int, int, int],
    n: int = 9,
) -> None:
    ang = np.linspace(0, 2 * math.pi, n, endpoint=False) + float(rng.uniform(0, 1))
    rad = rng.uniform(0.7, 1.15, n)
    pts = [(cx + rx * r * math.cos(a), cy + ry * r * math.sin(a), d) for a, r in zip(ang, rad, strict=True)]
    cv.poly(pts, c)


def draw_garbage(p: Params, sx: float, sy: float, sd: float, phase: float = 0.0) -> Sprite:
    rng = np.random.default_rng(p["seed"])
    s = p["size_m"]
    var = p["variant"]
    cv = Canvas(sx, sy, sd, s * 0.8 + 0.2, max(0.9, s * 0.7), s * 0.8, s * 0.4)
    if var == "bags":
        n = int(rng.integers(1, 6))
        bag_cols = [
            (25, 25, 25),
            (235, 235, 235),
            (200, 120, 40),
            (40, 40, 180),
            (60, 150, 60),
            (30, 180, 220),
        ]
        for _ in range(n):
            c = bag_cols[rng.integers(len(bag_cols))] if rng.random() < 0.85 else hsv(rng)
            bx, bd = float(rng.uniform(-s / 2, s / 2)), float(rng.uniform(-0.1, s * 0.6))
            r = float(rng.uniform(0.17, 0.3))
            hh = r * float(rng.uniform(0.9, 1.4))
            _blob(cv, rng, bx, hh * 0.85, bd, r, hh * 0.85, c, 10)
            cv.poly(
                [
                    (bx - 0.05, hh * 1.6, bd),
                    (bx + 0.05, hh * 1.6, bd),
                    (bx + 0.02, hh * 1.6 + 0.1, bd),
                    (bx - 0.02, hh * 1.6 + 0.1, bd),
                ],
                shade(c, 0.8),
            )
            cv.oval((bx - r * 0.3, hh * 1.1, bd), r * 0.25, hh * 0.2, shade(c, 1.3), angle_deg=-30)
    elif var == "litter":
        n = int(rng.integers(12, 30))
        for _ in range(n):
            x, d = float(rng.uniform(-s / 2, s / 2)), float(rng.uniform(0, s * 0.7))
            c = hsv(rng, (0, 1), (0.3, 1)) if rng.random() < 0.6 else grey(rng, 150, 250)
            k = rng.random()
            if k < 0.4:
                w = float(rng.uniform(0.06, 0.15))
                cv.poly([(x, 0, d), (x + w, 0.01, d + 0.03), (x + w * 0.8, 0.05, d), (x - 0.02, 0.04, d)], c)
            elif k < 0.7:
                cv.oval((x, 0.04, d), float(rng.uniform(0.04, 0.08)), 0.035, c)
            else:  # cans and bottles
                cv.line((x, 0.03, d), (x + float(rng.uniform(-0.15, 0.15)), 0.05, d), c, 0.05)
        _blob(cv, rng, 0, 0.1, s * 0.3, s * 0.25, 0.12, hsv(rng, (0, 0.5), (0.2, 0.6)))
    elif var == "construction":
        n = int(rng.integers(25, 50))
        hmax = s * 0.45
        base = [(150, 160, 165), (110, 120, 130), (80, 100, 150), (60, 80, 160), (190, 190, 185)]
        _blob(cv, rng, 0, hmax * 0.45, s * 0.3, s * 0.55, hmax * 0.55, base[rng.integers(len(base))], 12)
        for _ in range(n):
            x = float(rng.uniform(-s / 2, s / 2))
            top = hmax * max(0.0, 1 - (2 * x / s) ** 2)
            y = float(rng.uniform(0, top + 0.05))
            w = float(rng.uniform(0.06, 0.2))
            c = base[rng.integers(len(base))] if rng.random() < 0.8 else (60, 60, 170)
            cv.poly(
                [
                    (x, y, 0.1),
                    (x + w, y + 0.02, 0.1),
                    (x + w * 0.9, y + w * 0.6, 0.1),
                    (x + 0.01, y + w * 0.5, 0.1),
                ],
                shade(c, float(rng.uniform(0.7, 1.2))),
            )
        if rng.random() < 0.5:  # woven sacks of rubble
            for _ in range(int(rng.integers(1, 4))):
                x = float(rng.uniform(-s / 2, s / 2))
                _blob(
                    cv,
                    rng,
                    x,
                    0.2,
                    -0.05,
                    0.25,
                    0.2,
                    (210, 220, 220) if rng.random() < 0.6 else (70, 140, 60),
                )
    else:  # mixed pile
        n = int(rng.integers(10, 22))
        hmax = s * 0.5
        for _ in range(n):
            x = float(rng.uniform(-s / 2, s / 2))
            top = hmax * max(0.1, 1 - (2 * x / s) ** 2)
            y = 0.03 + float(rng.uniform(0, top))
            c = hsv(rng, (0, 1), (0.2, 1)) if rng.random() < 0.6 else grey(rng, 20, 240)
            _blob(
                cv,
                rng,
                x,
                y,
                float(rng.uniform(0, s * 0.4)),
                float(rng.uniform(0.08, 0.22)),
                float(rng.uniform(0.06, 0.18)),
                c,
                7,
            )
    return cv.finish(0.2)


# -------------------------------------------------------------------------------------------- trash bin
BIN_COLOURS = [
    (40, 130, 40),
    (170, 100, 30),
    (80, 80, 80),
    (40, 40, 190),
    (30, 130, 230),
    (60, 90, 120),
    (150, 150, 150),
]


def sample_trash_bin(rng: np.random.Generator) -> Params:
    return {
        "variant": str(rng.choice(["wheelie", "wheelie", "round", "twin", "square"])),
        "colour": BIN_COLOURS[rng.integers(len(BIN_COLOURS))] if rng.random() < 0.8 else hsv(rng),
        "colour2": BIN_COLOURS[rng.integers(len(BIN_COLOURS))],
        "height_m": float(rng.uniform(0.8, 1.15)),
        "width_m": float(rng.uniform(0.45, 0.7)),
        "lid_open": bool(rng.random() < 0.1),
        "sticker": bool(rng.random() < 0.6),
    }


def draw_trash_bin(p: Params, sx: float, sy: float, sd: float, phase: float = 0.0) -> Sprite:
    h, w = p["height_m"], p["width_m"]
    var = p["variant"]
    total_w = w * 2.1 if var == "twin" else w
    cv = Canvas(sx, sy, sd, total_w / 2 + 0.15, h + 0.5, w + 0.2, 0.3)
    units = (
        [(-w * 1.05 / 2 - w / 2 * 0, p["colour"]), (w * 1.05 / 2, p["colour2"])]
        if var == "twin"
        else [(0.0, p["colour"])]
    )
    if var == "twin":
        units = [(-w * 0.55, p["colour"]), (w * 0.55, p["colour2"])]
        cv.box(
            -total_w / 2, total_w / 2, h * 0.98, h * 1.02, -0.02, w * 0.8, (120, 120, 120), (150, 150, 150)
        )
    for cx, c in units:
        if var == "round":
            r = w / 2
            cv.poly([(cx - r * 0.9, 0), (cx + r * 0.9, 0), (cx + r, h * 0.9), (cx - r, h * 0.9)], c)
            for k in range(1, 6):
                cv.line(
                    (cx - r * 0.95 + k * r * 0.32, 0.05),
                    (cx - r * 0.95 + k * r * 0.32, h * 0.85),
                    shade(c, 0.8),
                    0.01,
                )
            cv.oval((cx, h * 0.9), r * 1.02, r * 0.35 * max(0.3, sd / max(sy, 1e-6)), shade(c, 1.2))
            cv.oval((cx, h * 0.9), r * 0.9, r * 0.9, shade(c, 1.1), arc=(180, 360))
            cv.oval((cx, h * 0.9 + r * 0.5), r * 0.3, r * 0.15, (30, 30, 30))
            continue
        taper = 0.88 if var == "wheelie" else 0.97
        cv.poly(
            [
                (cx - w / 2 * taper, 0.05, 0),
                (cx + w / 2 * taper, 0.05, 0),
                (cx + w / 2, h * 0.92, 0),
                (cx - w / 2, h * 0.92, 0),
            ],
            c,
        )
        cv.poly(
            [
                (cx - w / 2, h * 0.92, 0),
                (cx + w / 2, h * 0.92, 0),
                (cx + w / 2, h * 0.92, w * 0.9),
                (cx - w / 2, h * 0.92, w * 0.9),
            ],
            shade(c, 1.15),
        )
        if p["lid_open"]:
            cv.poly(
                [
                    (cx - w / 2, h * 0.92, w * 0.9),
                    (cx + w / 2, h * 0.92, w * 0.9),
                    (cx + w / 2, h * 1.55, w * 0.95),
                    (cx - w / 2, h * 1.55, w * 0.95),
                ],
                shade(c, 0.75),
            )
            cv.poly(
                [
                    (cx - w / 2 * 0.9, h * 0.93, 0.05),
                    (cx + w / 2 * 0.9, h * 0.93, 0.05),
                    (cx + w / 2 * 0.9, h * 0.93, w * 0.8),
                    (cx - w / 2 * 0.9, h * 0.93, w * 0.8),
                ],
                (30, 30, 30),
            )
        else:
            cv.poly(
                [
                    (cx - w / 2 - 0.02, h * 0.92, -0.02),
                    (cx + w / 2 + 0.02, h * 0.92, -0.02),
                    (cx + w / 2 + 0.02, h, -0.02),
                    (cx - w / 2 - 0.02, h, -0.02),
                ],
                shade(c, 0.85),
            )
            cv.poly(
                [
                    (cx - w / 2, h, -0.02),
                    (cx + w / 2, h, -0.02),
                    (cx + w / 2, h, w * 0.9),
                    (cx - w / 2, h, w * 0.9),
                ],
                shade(c, 1.2),
            )
        if var == "square":
            cv.poly(
                [
                    (cx - w * 0.3, h * 0.8),
                    (cx + w * 0.3, h * 0.8),
                    (cx + w * 0.3, h * 0.6),
                    (cx - w * 0.3, h * 0.6),
                ],
                (25, 25, 25),
            )
        if p["sticker"]:
            cv.poly(
                [
                    (cx - w * 0.25, h * 0.55),
                    (cx + w * 0.25, h * 0.55),
                    (cx + w * 0.25, h * 0.3),
                    (cx - w * 0.25, h * 0.3),
                ],
                (235, 235, 235),
            )
            cv.oval((cx, h * 0.43), w * 0.08, w * 0.08, shade(c, 0.8))
        if var == "wheelie":
            for sgn in (-1, 1):
                cv.oval((cx + sgn * w * 0.38, 0.08, -0.03), 0.08, 0.08, (25, 25, 25))
    return cv.finish(0.25)


# ------------------------------------------------------------------------------------------------ grill
def sample_grill(rng: np.random.Generator) -> Params:
    return {
        "variant": str(rng.choice(["trough", "trough", "kettle", "drum", "brazier"])),
        "length_m": float(rng.uniform(0.7, 1.5)),
        "metal": grey(rng, 20, 170) if rng.random() < 0.8 else (40, 70, 120),
        "skewers": bool(rng.random() < 0.7),
        "lit": bool(rng.random() < 0.8),
        "seed": int(rng.integers(1 << 30)),
    }


def _coals(
    cv: Canvas,
    rng: np.random.Generator,
    x0: float,
    x1: float,
    y: float,
    d0: float,
    d1: float,
    lit: bool,
    phase: float,
) -> None:
    for _ in range(int(10 + 12 * (x1 - x0))):
        x, d = float(rng.uniform(x0, x1)), float(rng.uniform(d0, d1))
        heat = 0.5 + 0.5 * math.sin(phase * 3 + x * 20) if lit else 0.0
        c = (int(20 + 40 * heat), int(40 + 120 * heat), int(60 + 195 * heat)) if lit else (40, 40, 45)
        cv.oval((x, y, d), 0.035, 0.025, c, glow=int(200 * heat) if lit else 0)


def draw_grill(p: Params, sx: float, sy: float, sd: float, phase: float = 0.0) -> Sprite:
    rng = np.random.default_rng(p["seed"])
    L = p["length_m"]
    var = p["variant"]
    metal = p["metal"]
    cv = Canvas(sx, sy, sd, L / 2 + 0.2, 1.3, 0.8, 0.3)
    if var == "trough":
        top, dep = float(rng.uniform(0.7, 0.9)), float(rng.uniform(0.22, 0.35))
        for xx in (-L / 2 + 0.05, L / 2 - 0.05):
            cv.line((xx, 0, dep), (xx, top - 0.2, dep), shade(metal, 0.7), 0.03)
        cv.poly([(-L / 2, top, 0), (L / 2, top, 0), (L / 2, top, dep), (-L / 2, top, dep)], (35, 35, 35))
        _coals(cv, rng, -L / 2 + 0.05, L / 2 - 0.05, top - 0.02, 0.03, dep - 0.03, p["lit"], phase)
        cv.poly([(-L / 2, top, 0), (L / 2, top, 0), (L / 2, top - 0.22, 0), (-L / 2, top - 0.22, 0)], metal)
        for k in range(int(L / 0.12)):
            xx = -L / 2 + 0.06 + k * 0.12
            cv.oval((xx, top - 0.17), 0.02, 0.012, (20, 20, 20))
        for xx in (-L / 2 + 0.05, L / 2 - 0.05):
            cv.line((xx, 0, 0), (xx, top - 0.2, 0), shade(metal, 0.8), 0.03)
        if p["skewers"]:
            for _ in range(int(rng.integers(4, 14))):
                xx = float(rng.uniform(-L / 2 + 0.05, L / 2 - 0.05))
                cv.line((xx, top + 0.01, -0.05), (xx + 0.02, top + 0.01, dep + 0.05), (30, 70, 140), 0.022)
        if rng.random() < 0.5:  # shelf with a basin of meat
            cv.line((-L / 2, top - 0.5), (L / 2, top - 0.5), shade(metal, 0.8), 0.025)
    elif var == "kettle":
        r = min(0.35, L * 0.3)
        top = 0.75
        for a in (-0.8, 0.0, 0.8):
            cv.line(
                (r * math.sin(a), top - r * 0.6, 0.1),
                (r * 1.1 * math.sin(a) * 1.4, 0, 0.1 + 0.15 * math.cos(a)),
                shade(metal, 0.7),
                0.025,
            )
        cv.oval((0, top - r * 0.2), r, r * 0.6, metal, arc=(0, 180))
        cv.oval((0, top - r * 0.2), r, r * 0.25 * max(0.3, sd / max(sy, 1e-6)) + 0.02, (30, 30, 30))
        _coals(cv, rng, -r * 0.6, r * 0.6, top - r * 0.2, -0.03, 0.03, p["lit"], phase)
        if rng.random() < 0.5:  # lid leaning on the side
            cv.oval((r * 1.1, top - r * 0.3), r * 0.3, r * 0.9, shade(metal, 0.9))
    elif var == "drum":
        r = 0.3
        Ld = min(L, 1.0)
        top = 0.85
        for xx in (-Ld / 2 + 0.05, Ld / 2 - 0.05):
            cv.line((xx, 0), (xx, top - r), shade(metal, 0.7), 0.035)
        cv.poly([(-Ld / 2, top - r), (Ld / 2, top - r), (Ld / 2, top), (-Ld / 2, top)], metal)
        cv.oval((-Ld / 2, top - r / 2), 0.05, r / 2, shade(metal, 0.8))
        cv.oval((Ld / 2, top - r / 2), 0.05, r / 2, shade(metal, 0.8))
        cv.poly(
            [(-Ld / 2, top, 0), (Ld / 2, top, 0), (Ld / 2, top, 0.25), (-Ld / 2, top, 0.25)], (30, 30, 30)
        )
        _coals(cv, rng, -Ld / 2 + 0.05, Ld / 2 - 0.05, top, 0.02, 0.22, p["lit"], phase)
        cv.poly(
            [
                (-Ld / 2, top + 0.02, 0.3),
                (Ld / 2, top + 0.02, 0.3),
                (Ld / 2, top + 0.45, 0.35),
                (-Ld / 2, top + 0.45, 0.35),
            ],
            shade(metal, 0.9),
        )
    else:  # brazier bucket on the ground
        r = 0.25
        hgt = 0.4
        cv.poly([(-r * 0.8, 0), (r * 0.8, 0), (r, hgt), (-r, hgt)], metal)
        for k in range(4):
            cv.oval(
                (-r * 0.5 + k * r * 0.33, hgt * 0.5),
                0.025,
                0.025,
                (30, 60, 200) if p["lit"] else (20, 20, 20),
                glow=150 if p["lit"] else 0,
            )
        cv.oval((0, hgt), r, r * 0.3, (30, 30, 30))
        _coals(cv, rng, -r * 0.7, r * 0.7, hgt, -0.03, 0.03, p["lit"], phase)
    return cv.finish(0.2)


# ------------------------------------------------------------------------------------------------ smoke
def sample_smoke(rng: np.random.Generator) -> Params:
    return {
        "height_m": float(rng.uniform(1.2, 3.0)),
        "width_m": float(rng.uniform(0.4, 1.0)),
        "drift": float(rng.uniform(-0.6, 0.6)),
        "tone": int(rng.integers(150, 235)),
        "tint": int(rng.integers(-15, 15)),
        "density": float(rng.uniform(0.6, 0.9)),
        "seed": int(rng.integers(1 << 30)),
    }


def draw_smoke(p: Params, sx: float, sy: float, sd: float, phase: float = 0.0) -> Sprite:
    """A plume of soft puffs rising, widening and thinning; ``phase`` (radians) advances the puffs."""
    rng = np.random.default_rng(p["seed"])
    H, W = p["height_m"], p["width_m"]
    drift = p["drift"]
    half = W / 2 + abs(drift) * H / 2 + W * 0.6
    cv = Canvas(sx, sy, sd, half, H + W * 0.6, 0.1, 0.1)
    hh, ww = cv.alpha.shape
    # Paint density at reduced resolution, blur, upsample: soft edges for free.
    q = 4 if min(hh, ww) > 48 else 2 if min(hh, ww) > 16 else 1
    sh_, sw_ = max(1, hh // q), max(1, ww // q)
    acc = np.zeros((sh_, sw_), np.float32)
    tmp = np.zeros_like(acc)
    n = int(rng.integers(18, 30))
    offs = rng.uniform(0, 1, n)
    wob = rng.uniform(-1, 1, n)
    for i in range(n):
        t = float((offs[i] + phase / (2 * math.pi) * 0.25) % 1.0)
        y = 0.05 + t * H
        x = drift * t * t * H / 2 + W * 0.25 * t * float(wob[i]) + 0.04 * math.sin(phase * 0.7 + i)
        r = W * (0.1 + 0.6 * t)
        strength = (1 - t) ** 0.6 * 0.8
        cx, cy = cv.P(x, y)
        tmp.fill(0)
        cv2.circle(tmp, (int(cx / q), int(cy / q)), max(1, int(r * sx / q)), 1.0, -1, cv2.LINE_AA)
        acc += tmp * strength
    sigma = max(0.8, W * sx / q / 6)
    acc = cv2.GaussianBlur(acc, (0, 0), sigma)
    _, coarse = _smoke_noise()
    ny, nx = (
        int(rng.integers(0, 1024 - sh_)) if sh_ < 1024 else 0,
        int(rng.integers(0, 1024 - sw_)) if sw_ < 1024 else 0,
    )
    texture = coarse[ny : ny + sh_, nx : nx + sw_]
    if texture.shape == acc.shape:
        acc *= texture
    acc = np.clip(acc * 1.6, 0, 1) * p["density"]
    dens = cv2.resize(acc, (ww, hh), interpolation=cv2.INTER_LINEAR)
    cv.alpha = (dens * 255).astype(np.uint8)
    cv.glow = (dens * 110).astype(np.uint8)  # at night, smoke is lit by the fire and the lamps
    t0 = p["tone"]
    cv.rgb[:] = (min(255, t0 + p["tint"]), t0, max(0, t0 - p["tint"]))
    dense = dens >= 0.45 * p["density"]
    return cv.finish(0.0, dense=dense, opaque=False)


_SMOKE_NOISE: list[np.ndarray] = []


def _smoke_noise() -> tuple[None, np.ndarray]:
    """A fixed wispy modulation texture in [0.45, 1.25] (per process, from a fixed seed)."""
    if not _SMOKE_NOISE:
        rng = np.random.default_rng(99)
        small = rng.uniform(0.45, 1.25, (64, 64)).astype(np.float32)
        _SMOKE_NOISE.append(cv2.resize(small, (1024, 1024), interpolation=cv2.INTER_CUBIC))
    return None, _SMOKE_NOISE[0]


# --------------------------------------------------------------------------------------- hard negatives
def sample_car(rng: np.random.Generator) -> Params:
    return {
        "view": str(rng.choice(["side", "rear", "three_quarter"])),
        "length_m": float(rng.uniform(3.9, 4.9)),
        "height_m": float(rng.uniform(1.4, 1.75)),
        "colour": hsv(rng, (0, 0.9), (0.2, 0.95)) if rng.random() < 0.5 else grey(rng, 15, 245),
        "dir": 1 if rng.random() < 0.5 else -1,
    }


def draw_car(p: Params, sx: float, sy: float, sd: float, phase: float = 0.0) -> Sprite:
    L, H = p["length_m"], p["height_m"]
    c = p["colour"]
    view = p["view"]
    W = 1.8
    span = L if view == "side" else W if view == "rear" else L * 0.75
    cv = Canvas(sx, sy, sd, span / 2 + 0.2, H + 0.1, L, 0.3)
    glass = (70, 60, 50)
    if view == "rear":
        cv.box(-W / 2, W / 2, 0.25, H * 0.62, 0, L * 0.9, c, shade(c, 1.1))
        cv.poly(
            [(-W / 2 + 0.12, H * 0.62), (W / 2 - 0.12, H * 0.62), (W / 2 - 0.25, H), (-W / 2 + 0.25, H)],
            shade(c, 0.9),
        )
        cv.poly(
            [
                (-W / 2 + 0.2, H * 0.65),
                (W / 2 - 0.2, H * 0.65),
                (W / 2 - 0.3, H * 0.95),
                (-W / 2 + 0.3, H * 0.95),
            ],
            glass,
        )
        for sgn in (-1, 1):
            cv.poly(
                [
                    (sgn * (W / 2 - 0.05), H * 0.5),
                    (sgn * (W / 2 - 0.35), H * 0.5),
                    (sgn * (W / 2 - 0.35), H * 0.4),
                    (sgn * (W / 2 - 0.05), H * 0.4),
                ],
                (30, 30, 200),
                glow=200,
            )
            cv.poly(
                [
                    (sgn * (W / 2 - 0.1), 0.0),
                    (sgn * (W / 2 - 0.35), 0.0),
                    (sgn * (W / 2 - 0.35), 0.3),
                    (sgn * (W / 2 - 0.1), 0.3),
                ],
                (20, 20, 20),
            )
        cv.poly([(-0.25, 0.35), (0.25, 0.35), (0.25, 0.47), (-0.25, 0.47)], (220, 180, 40))
        return cv.finish(0.3)
    k = p["dir"]
    f = 1.0 if view == "side" else 0.75
    Lh = L / 2 * f
    body = [
        (-Lh, 0.3),
        (Lh, 0.3),
        (Lh, H * 0.55),
        (Lh * 0.55, H * 0.62),
        (Lh * 0.3, H),
        (-Lh * 0.45, H),
        (-Lh * 0.8, H * 0.62),
        (-Lh, H * 0.58),
    ]
    body = [(k * x, y) for x, y in body]
    if view == "three_quarter":
        cv.poly(
            [(k * Lh, 0.3, 0), (k * Lh, 0.3, W * 0.8), (k * Lh, H * 0.55, W * 0.8), (k * Lh, H * 0.55, 0)],
            shade(c, 0.85),
        )
    cv.poly(body, c)
    win = [
        (k * Lh * 0.45, H * 0.64),
        (k * Lh * 0.26, H * 0.95),
        (-k * Lh * 0.4, H * 0.95),
        (-k * Lh * 0.72, H * 0.64),
    ]
    cv.poly(win, glass)
    cv.line((-k * Lh * 0.1, H * 0.64), (-k * Lh * 0.1, H * 0.95), c, 0.06)
    for wx in (-Lh * 0.62, Lh * 0.62):
        cv.oval((wx, 0.32), 0.32, 0.32, (20, 20, 20))
        cv.oval((wx, 0.32), 0.18, 0.18, (150, 150, 150))
    return cv.finish(0.3)


def sample_umbrella(rng: np.random.Generator) -> Params:
    return {
        "radius_m": float(rng.uniform(0.45, 0.6)),
        "colour": hsv(rng, (0, 1), (0.1, 0.95)),
        "height_m": float(rng.uniform(1.85, 2.05)),
    }


def draw_umbrella(p: Params, sx: float, sy: float, sd: float, phase: float = 0.0) -> Sprite:
    """A hand-held umbrella (drawn over a walker); anchor at the walker's feet."""
    r, hh = p["radius_m"], p["height_m"]
    cv = Canvas(sx, sy, sd, r + 0.1, hh + 0.3, 0.1, 0.1)
    cv.line((0.05, hh - 0.6), (0.0, hh), (40, 40, 40), 0.02)
    cv.oval((0, hh - 0.05), r, r * 0.45, p["colour"], arc=(180, 360))
    cv.line((-r, hh - 0.05), (r, hh - 0.05), shade(p["colour"], 0.7), 0.02)
    return cv.finish(0.1)


def sample_tree(rng: np.random.Generator) -> Params:
    return {
        "height_m": float(rng.uniform(3.5, 7)),
        "crown": hsv(rng, (0.4, 0.8), (0.2, 0.55)),
        "seed": int(rng.integers(1 << 30)),
    }


def draw_tree(p: Params, sx: float, sy: float, sd: float, phase: float = 0.0) -> Sprite:
    rng = np.random.default_rng(p["seed"])
    H = p["height_m"]
    cv = Canvas(sx, sy, sd, H * 0.35, H + 0.2, 0.3, 0.3)
    cv.poly([(-0.5, 0, 0.5), (0.5, 0, 0.5), (0.5, 0, -0.5), (-0.5, 0, -0.5)], (90, 95, 100))
    cv.line((0, 0), (0, H * 0.6), (40, 60, 80), 0.22)
    for _ in range(7):
        c = np.clip(np.array(p["crown"]) + rng.integers(-20, 20, 3), 0, 255)
        cv.oval(
            (float(rng.uniform(-H * 0.18, H * 0.18)), float(rng.uniform(H * 0.6, H * 0.88))),
            H * 0.14,
            H * 0.12,
            c,
        )
    return cv.finish(0.2)


def sample_pole(rng: np.random.Generator) -> Params:
    return {
        "height_m": float(rng.uniform(3, 8)),
        "colour": grey(rng, 60, 200),
        "lamp": bool(rng.random() < 0.6),
        "sign": hsv(rng) if rng.random() < 0.4 else None,
    }


def draw_pole(p: Params, sx: float, sy: float, sd: float, phase: float = 0.0) -> Sprite:
    H = p["height_m"]
    cv = Canvas(sx, sy, sd, 1.0, H + 0.3, 0.2, 0.2)
    cv.line((0, 0), (0, H), p["colour"], 0.12)
    if p["lamp"]:
        cv.line((0, H), (0.8, H + 0.1), p["colour"], 0.07)
        cv.oval((0.8, H), 0.2, 0.08, (200, 240, 250), glow=255)
    if p["sign"] is not None:
        cv.poly([(-0.3, 2.2), (0.3, 2.2), (0.3, 2.8), (-0.3, 2.8)], p["sign"])
    return cv.finish(0.1)


def sample_bollard(rng: np.random.Generator) -> Params:
    return {
        "colour": grey(rng, 40, 230) if rng.random() < 0.6 else hsv(rng),
        "n": int(rng.integers(1, 5)),
        "height_m": float(rng.uniform(0.5, 0.9)),
    }


def draw_bollard(p: Params, sx: float, sy: float, sd: float, phase: float = 0.0) -> Sprite:
    n, h = p["n"], p["height_m"]
    cv = Canvas(sx, sy, sd, n * 0.6 + 0.2, h + 0.1, 0.3, 0.3)
    for i in range(n):
        x = (i - (n - 1) / 2) * 1.1
        cv.line((x, 0), (x, h), p["colour"], 0.13)
        cv.line((x, h * 0.7), (x, h * 0.8), (40, 40, 200), 0.13)
    return cv.finish(0.2)


def sample_planter(rng: np.random.Generator) -> Params:
    return {
        "colour": grey(rng, 80, 200),
        "w": float(rng.uniform(0.6, 1.6)),
        "h": float(rng.uniform(0.4, 0.8)),
        "green": hsv(rng, (0.5, 0.9), (0.3, 0.7)),
        "round": bool(rng.random() < 0.4),
    }


def draw_planter(p: Params, sx: float, sy: float, sd: float, phase: float = 0.0) -> Sprite:
    w, h = p["w"], p["h"]
    cv = Canvas(sx, sy, sd, w / 2 + 0.2, h + 0.7, w, 0.3)
    if p["round"]:
        cv.poly([(-w / 2 * 0.8, 0), (w / 2 * 0.8, 0), (w / 2, h), (-w / 2, h)], p["colour"])
    else:
        cv.box(-w / 2, w / 2, 0, h, 0, w * 0.6, p["colour"], shade(p["colour"], 1.1))
    cv.oval((0, h + 0.2), w * 0.5, 0.35, p["green"])
    return cv.finish(0.2)


def sample_cone(rng: np.random.Generator) -> Params:
    return {"n": int(rng.integers(1, 4))}


def draw_cone(p: Params, sx: float, sy: float, sd: float, phase: float = 0.0) -> Sprite:
    cv = Canvas(sx, sy, sd, p["n"] * 0.5 + 0.2, 0.8, 0.2, 0.2)
    for i in range(p["n"]):
        x = (i - (p["n"] - 1) / 2) * 0.8
        cv.poly([(x - 0.2, 0), (x + 0.2, 0), (x + 0.2, 0.05), (x - 0.2, 0.05)], (30, 30, 30))
        cv.poly([(x - 0.15, 0.05), (x + 0.15, 0.05), (x + 0.03, 0.7), (x - 0.03, 0.7)], (20, 90, 240))
        cv.poly([(x - 0.1, 0.3), (x + 0.1, 0.3), (x + 0.08, 0.42), (x - 0.08, 0.42)], (240, 240, 240))
    return cv.finish(0.1)


def sample_sign_board(rng: np.random.Generator) -> Params:
    return {"colour": hsv(rng), "h": float(rng.uniform(0.8, 1.3)), "w": float(rng.uniform(0.5, 0.8))}


def draw_sign_board(p: Params, sx: float, sy: float, sd: float, phase: float = 0.0) -> Sprite:
    w, h = p["w"], p["h"]
    cv = Canvas(sx, sy, sd, w / 2 + 0.2, h + 0.1, 0.5, 0.3)
    cv.poly([(-w / 2, 0, 0), (w / 2, 0, 0), (w / 2 * 0.8, h, 0.2), (-w / 2 * 0.8, h, 0.2)], p["colour"])
    cv.poly(
        [
            (-w / 2 * 0.6, h * 0.7, 0.15),
            (w / 2 * 0.6, h * 0.7, 0.15),
            (w / 2 * 0.6, h * 0.4, 0.1),
            (-w / 2 * 0.6, h * 0.4, 0.1),
        ],
        (240, 240, 240),
    )
    return cv.finish(0.1)


def sample_rock(rng: np.random.Generator) -> Params:
    g = int(rng.integers(90, 170))
    return {
        "colour": (g - 10, g, g + int(rng.integers(5, 25))),
        "size_m": float(rng.uniform(0.6, 1.1)),
        "seed": int(rng.integers(1 << 30)),
    }


def draw_rock(p: Params, sx: float, sy: float, sd: float, phase: float = 0.0) -> Sprite:
    rng = np.random.default_rng(p["seed"])
    s, c = p["size_m"], p["colour"]
    cv = Canvas(sx, sy, sd, s * 0.7 + 0.2, s * 0.8, s * 0.6, s * 0.3)
    _blob(cv, rng, 0.0, s * 0.3, 0.0, s * 0.55, s * 0.32, c, 11)
    for _ in range(4):  # facets and cracks: texture a gradient descriptor can hold on to
        fx, fy = float(rng.uniform(-s * 0.3, s * 0.3)), float(rng.uniform(s * 0.15, s * 0.45))
        _blob(cv, rng, fx, fy, 0.01, s * 0.14, s * 0.08, shade(c, float(rng.uniform(0.7, 1.25))), 7)
    cv.line((-s * 0.3, s * 0.2), (s * 0.1, s * 0.42), shade(c, 0.55), 0.03)
    return cv.finish(0.35)


def sample_bench(rng: np.random.Generator) -> Params:
    return {
        "wood": hsv(rng, (0.4, 0.7), (0.35, 0.6)) if rng.random() < 0.3 else (40, 90, 140),
        "frame": grey(rng, 30, 90),
        "w": float(rng.uniform(1.6, 2.2)),
    }


def draw_bench(p: Params, sx: float, sy: float, sd: float, phase: float = 0.0) -> Sprite:
    w, wood, frame = p["w"], p["wood"], p["frame"]
    cv = Canvas(sx, sy, sd, w / 2 + 0.2, 1.0, 0.5, 0.3)
    for x in (-w / 2 + 0.1, w / 2 - 0.1):
        cv.line((x, 0), (x, 0.45), frame, 0.06)
        cv.line((x, 0.45, 0.3), (x, 0.9, 0.35), frame, 0.05)
    for i in range(3):  # seat slats
        cv.box(
            -w / 2,
            w / 2,
            0.42 + i * 0.015,
            0.46 + i * 0.015,
            i * 0.12,
            i * 0.12 + 0.1,
            wood,
            shade(wood, 1.2),
        )
    for y in (0.6, 0.75, 0.88):  # back rest
        cv.poly(
            [(-w / 2, y, 0.32), (w / 2, y, 0.32), (w / 2, y + 0.08, 0.34), (-w / 2, y + 0.08, 0.34)], wood
        )
    return cv.finish(0.2)


# ------------------------------------------------------------------------------- unknown objects
def sample_cardboard(rng: np.random.Generator) -> Params:
    g = float(rng.uniform(0.8, 1.1))
    return {
        "colour": shade((70, 125, 170), g),  # kraft brown
        "n": int(rng.integers(3, 7)),
        "size_m": float(rng.uniform(0.9, 1.4)),
        "seed": int(rng.integers(1 << 30)),
    }


def draw_cardboard(p: Params, sx: float, sy: float, sd: float, phase: float = 0.0) -> Sprite:
    rng = np.random.default_rng(p["seed"])
    s, c = p["size_m"], p["colour"]
    cv = Canvas(sx, sy, sd, s * 0.7 + 0.2, s * 0.9, s * 0.6, s * 0.3)
    stacks: list[float] = [0.0] * 3
    for i in range(p["n"]):
        col = i % 3
        x = -s / 2 + col * s / 3 + float(rng.uniform(-0.05, 0.05))
        w, hh = float(rng.uniform(0.3, 0.45)) * s, float(rng.uniform(0.2, 0.35)) * s
        y0 = stacks[col]
        stacks[col] = y0 + hh
        k = shade(c, float(rng.uniform(0.85, 1.15)))
        cv.box(x, x + w, y0, y0 + hh, 0.0, w * 0.7, k, shade(k, 1.2))
        cv.line((x + w * 0.5, y0 + hh * 0.45), (x + w * 0.5, y0 + hh * 0.55), (200, 210, 220), 0.03)  # tape
    return cv.finish(0.3)


def sample_folding_table(rng: np.random.Generator) -> Params:
    return {
        "top": hsv(rng, (0.0, 0.3), (0.7, 0.95)),
        "w": float(rng.uniform(1.1, 1.6)),
        "goods": str(rng.choice(["fruit", "boxes", "clothes", "mixed"])),
        "seed": int(rng.integers(1 << 30)),
    }


def draw_folding_table(p: Params, sx: float, sy: float, sd: float, phase: float = 0.0) -> Sprite:
    rng = np.random.default_rng(p["seed"])
    w, top = p["w"], p["top"]
    cv = Canvas(sx, sy, sd, w / 2 + 0.2, 1.2, 0.8, 0.3)
    leg = (60, 60, 60)
    for x in (-w / 2 + 0.05, w / 2 - 0.05):
        cv.line((x - 0.1, 0, 0.05), (x + 0.1, 0.72, 0.3), leg, 0.03)
        cv.line((x + 0.1, 0, 0.55), (x - 0.1, 0.72, 0.3), leg, 0.03)
    cv.box(-w / 2, w / 2, 0.7, 0.75, 0.0, 0.6, shade(top, 0.8), top)
    _goods(cv, rng, p["goods"], -w / 2 + 0.05, w / 2 - 0.05, 0.75, 0.1, 0.5, int(rng.integers(6, 14)))
    return cv.finish(0.2)


def sample_mattress(rng: np.random.Generator) -> Params:
    return {
        "cover": hsv(rng, (0.0, 0.35), (0.6, 0.95)),
        "w": float(rng.uniform(1.5, 2.0)),
        "upright": bool(rng.random() < 0.5),
        "seed": int(rng.integers(1 << 30)),
    }


def draw_mattress(p: Params, sx: float, sy: float, sd: float, phase: float = 0.0) -> Sprite:
    rng = np.random.default_rng(p["seed"])
    w, c = p["w"], p["cover"]
    if p["upright"]:  # leant against a wall or a pole: a tall slab
        cv = Canvas(sx, sy, sd, 0.8, w + 0.1, 0.5, 0.3)
        cv.box(-0.7, 0.7, 0.0, w, 0.0, 0.2, c, shade(c, 1.1))
        for y in np.linspace(0.15, w - 0.15, 6):
            cv.line((-0.65, float(y)), (0.65, float(y)), shade(c, 0.85), 0.015)
    else:  # lying flat on the pavement
        cv = Canvas(sx, sy, sd, w / 2 + 0.2, 0.5, 1.6, 0.3)
        cv.box(-w / 2, w / 2, 0.0, 0.22, 0.0, 1.4, shade(c, 0.8), c)
        for d in np.linspace(0.15, 1.25, 5):
            cv.line((-w / 2 + 0.1, 0.22, float(d)), (w / 2 - 0.1, 0.22, float(d)), shade(c, 0.88), 0.015)
    _blob(cv, rng, float(rng.uniform(-0.3, 0.3)), 0.15, 0.1, 0.2, 0.1, shade(c, 0.7), 8)  # a stain
    return cv.finish(0.25)


SAMPLERS: dict[str, Callable[[np.random.Generator], Params]] = {
    name: globals()[f"sample_{name}"] for name in CLASS_NAMES + DISTRACTORS + LOOKALIKES + UNKNOWN_OBJECTS
}
DRAWERS: dict[str, Callable[..., Sprite]] = {
    name: globals()[f"draw_{name}"] for name in CLASS_NAMES + DISTRACTORS + LOOKALIKES + UNKNOWN_OBJECTS
}


def sample(kind: str, rng: np.random.Generator) -> Params:
    """Appearance parameters for one object of ``kind`` (a class name or a distractor)."""
    try:
        return SAMPLERS[kind](rng)
    except KeyError:
        raise ValueError(f"unknown object kind {kind!r}; use one of {sorted(SAMPLERS)}") from None


def draw(kind: str, params: Params, sx: float, sy: float, sd: float, phase: float = 0.0) -> Sprite:
    """Draw ``kind`` at scale ``sx``/``sy``/``sd`` pixels per metre (across / up / away)."""
    return DRAWERS[kind](params, sx, sy, sd, phase)
