"""Random street scenes for the detector's training images.

Image ``i`` of seed ``S`` depends on ``(S, i)`` only. Consecutive images share a street view in groups
of ``VIEW_GROUP`` (the view is drawn from ``(S, i // VIEW_GROUP)``), with their own objects, light,
weather and noise: painting the street is the slowest step, and a per-process one-view cache keeps
the output independent of how images are split across workers.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from datasets.synth import objects
from datasets.synth.background import Background, render_background
from datasets.synth.camera import Camera
from datasets.synth.layout import StreetLayout, random_layout
from datasets.synth.render import Frame, Lighting, Placed, compose, scales_at

VIEW_GROUP = 4

#: Typical standing height (m) per kind, for keeping boxes in a learnable pixel range.
NOMINAL_HEIGHT_M = {
    "person": 1.7,
    "bicycle": 1.0,
    "e_bike": 1.1,
    "vending_stall": 1.6,
    "garbage": 0.5,
    "trash_bin": 1.0,
    "grill": 0.8,
    "smoke": 1.8,
    "car": 1.5,
    "umbrella": 2.0,
    "tree": 5.0,
    "pole": 5.0,
    "bollard": 0.7,
    "planter": 0.8,
    "cone": 0.7,
    "sign_board": 1.0,
}
#: Pixel height range of the nominal height: objects are placed so their boxes stay learnable.
PX_RANGE = {"garbage": (16, 200), "smoke": (30, 330), "tree": (40, 900), "pole": (40, 900), "car": (25, 400)}
DEFAULT_PX_RANGE = (22, 320)

#: Where each kind may stand (bands of the street layout).
BANDS = {
    "person": ("right_sidewalk", "left_sidewalk", "road", "right_sidewalk"),
    "bicycle": ("right_sidewalk", "right_sidewalk", "left_sidewalk", "road"),
    "e_bike": ("right_sidewalk", "left_sidewalk", "road"),
    "vending_stall": ("right_sidewalk", "right_sidewalk", "left_sidewalk", "road"),
    "garbage": ("right_sidewalk", "left_sidewalk", "road"),
    "trash_bin": ("right_sidewalk", "left_sidewalk"),
    "grill": ("right_sidewalk", "left_sidewalk", "road"),
    "smoke": ("right_sidewalk", "left_sidewalk", "road"),
    "car": ("road",),
    "tree": ("right_sidewalk", "left_sidewalk"),
    "pole": ("right_sidewalk", "left_sidewalk"),
    "bollard": ("right_sidewalk", "left_sidewalk"),
    "planter": ("right_sidewalk", "left_sidewalk"),
    "cone": ("road", "right_sidewalk"),
    "sign_board": ("right_sidewalk", "left_sidewalk"),
}


@dataclass
class View:
    camera: Camera
    layout: StreetLayout
    background: Background


def random_camera(rng: np.random.Generator, layout: StreetLayout, width_px: int, height_px: int) -> Camera:
    height_m = float(rng.choice([rng.uniform(2.8, 5), rng.uniform(5, 8), rng.uniform(8, 12)]))
    return Camera(
        width_px=width_px,
        height_px=height_px,
        height_m=height_m,
        pitch_deg=float(rng.uniform(12, 22) + (height_m - 3) * rng.uniform(0.5, 1.8)),
        yaw_deg=float(rng.uniform(-40, 40)),
        hfov_deg=float(rng.uniform(48, 82)),
        x_m=float(rng.uniform(layout.x_left_curb_m - 1, layout.x_right_bld_m - 0.5)),
    )


def random_view(seed: int, group: int, width_px: int, height_px: int) -> View:
    rng = np.random.default_rng([seed, group, 1])
    layout = random_layout(rng)
    camera = random_camera(rng, layout, width_px, height_px)
    return View(camera, layout, render_background(camera, layout, rng))


_VIEW_CACHE: dict[tuple[int, int, int, int], View] = {}


def cached_view(seed: int, group: int, width_px: int, height_px: int) -> View:
    key = (seed, group, width_px, height_px)
    if key not in _VIEW_CACHE:
        _VIEW_CACHE.clear()
        _VIEW_CACHE[key] = random_view(seed, group, width_px, height_px)
    return _VIEW_CACHE[key]


def band_range(layout: StreetLayout, band: str) -> tuple[float, float]:
    return {
        "road": (layout.x_left_curb_m + 0.3, layout.x_right_curb_m - 0.3),
        "right_sidewalk": (layout.x_right_curb_m + 0.2, layout.x_right_bld_m - 0.3),
        "left_sidewalk": (layout.x_left_bld_m + 0.3, layout.x_left_curb_m - 0.2),
    }[band]


class Placer:
    """Finds ground spots where an object is on screen, at a learnable size and not inside another."""

    def __init__(self, view: View, rng: np.random.Generator) -> None:
        self.view = view
        self.rng = rng
        self.taken: list[tuple[float, float, float]] = []
        cam = view.camera
        horizon = cam.height_px / 2 - cam.focal_px * math.tan(math.radians(cam.pitch_deg))
        self.v_min = max(horizon + 8, 0.18 * cam.height_px)

    def spot(
        self, kind: str, radius_m: float = 0.4, band: str | None = None, tries: int = 25
    ) -> tuple[float, float] | None:
        cam, lay, rng = self.view.camera, self.view.layout, self.rng
        lo, hi = PX_RANGE.get(kind, DEFAULT_PX_RANGE)
        nominal = NOMINAL_HEIGHT_M[kind]
        for _ in range(tries):
            v = float(rng.uniform(self.v_min, cam.height_px * 1.05))
            u = float(rng.uniform(-0.02, 1.02) * cam.width_px)
            g = cam.ground_point(u, v)
            if g is None:
                continue
            x, z = g
            b = band or str(rng.choice(BANDS[kind]))
            bx0, bx1 = band_range(lay, b)
            if bx1 <= bx0:
                continue
            if not (bx0 <= x <= bx1):
                x = float(rng.uniform(bx0, bx1))
            u2, v2, zc, _, sy, _ = scales_at(cam, x, z)
            if zc < 1.0 or not (-0.05 * cam.width_px <= u2 <= 1.05 * cam.width_px) or v2 < self.v_min:
                continue
            if not (lo <= nominal * sy <= hi):
                continue
            if any((x - tx) ** 2 + (z - tz) ** 2 < (radius_m + tr) ** 2 for tx, tz, tr in self.taken):
                continue
            self.taken.append((x, z, radius_m))
            return x, z
        return None


def _count(rng: np.random.Generator, mean: float, cap: int) -> int:
    return int(min(cap, rng.poisson(mean)))


def random_lighting(rng: np.random.Generator) -> Lighting:
    tod = str(rng.choice(["day", "day", "day", "dusk", "night", "night"]))
    weather = str(rng.choice(["clear", "clear", "clear", "overcast", "rain", "haze"]))
    ang = float(rng.uniform(0, 2 * math.pi))
    length = float(rng.uniform(0.2, 0.9)) * (1.8 if tod == "dusk" else 1.0)
    return Lighting(
        time_of_day=tod,
        weather=weather,
        shadow_dx=math.cos(ang) * length,
        shadow_dy=abs(math.sin(ang)) * length * 0.5 + 0.05,
        shadow_strength=float(rng.uniform(0.3, 0.6)),
        exposure=float(rng.uniform(0.8, 1.2)),
        noise=float(rng.uniform(0.2, 1.6)),
        blur_px=int(rng.choice([0, 0, 0, 0, 0, 3, 5, 7])),
        seed=int(rng.integers(1 << 31)),
    )


def random_objects(view: View, rng: np.random.Generator) -> list[Placed]:
    """Sample what stands in the street: every class appears often, with hard negatives around."""
    placer = Placer(view, rng)
    out: list[Placed] = []

    def add(
        kind: str, radius: float = 0.4, band: str | None = None, params: objects.Params | None = None
    ) -> Placed | None:
        s = placer.spot(kind, radius, band)
        if s is None:
            return None
        p = Placed(
            kind, params or objects.sample(kind, rng), s[0], s[1], phase=float(rng.uniform(0, 2 * math.pi))
        )
        out.append(p)
        return p

    # Rows of parked bikes / e-bikes (the typical mis-parking look).
    for _ in range(_count(rng, 0.7, 2)):
        kind = "bicycle" if rng.random() < 0.65 else "e_bike"
        start = placer.spot(kind, 0.5)
        if start is None:
            continue
        base = objects.sample(kind, rng)
        yaw = float(rng.uniform(-math.pi, math.pi))
        along_z = rng.random() < 0.6
        gap = float(rng.uniform(0.45, 0.8))
        for j in range(int(rng.integers(2, 7))):
            params = objects.sample(kind, rng) if rng.random() < 0.5 else dict(base)
            params["yaw"] = yaw + float(rng.normal(0, 0.15))
            x = start[0] + (0 if along_z else j * gap)
            z = start[1] + (j * gap if along_z else 0)
            out.append(Placed(kind, params, x, z))
    for kind, mean, cap in (
        ("bicycle", 0.9, 4),
        ("e_bike", 1.0, 4),
        ("vending_stall", 1.0, 3),
        ("garbage", 1.4, 4),
        ("trash_bin", 1.1, 4),
    ):
        for _ in range(_count(rng, mean, cap)):
            add(kind, 0.8 if kind == "vending_stall" else 0.4)
    # Garbage next to a bin now and then: both labelled, each its own box.
    for p in [o for o in out if o.kind == "trash_bin"]:
        if rng.random() < 0.3:
            out.append(
                Placed(
                    "garbage",
                    objects.sample("garbage", rng),
                    p.x_m + float(rng.uniform(-1.0, 1.0)),
                    p.z_m - float(rng.uniform(0.3, 0.8)),
                )
            )
    for _ in range(_count(rng, 0.85, 3)):
        g = add("grill", 0.6)
        if g is not None and rng.random() < 0.8:
            sp = objects.sample("smoke", rng)
            out.append(
                Placed(
                    "smoke",
                    sp,
                    g.x_m,
                    g.z_m - 0.05,
                    lift_m=0.7,
                    phase=float(rng.uniform(0, 6.28)),
                    order_bias=0.1,
                )
            )
    for _ in range(_count(rng, 0.15, 1)):
        add("smoke", 0.3)
    for _ in range(_count(rng, 2.8, 8)):
        person = add("person", 0.35)
        if person is None:
            continue
        r = rng.random()
        if r < 0.12 and person.params["facing"] in ("side", "three_quarter"):
            # A rider: person on a bicycle or e-bike, both labelled.
            vk = "bicycle" if rng.random() < 0.5 else "e_bike"
            vp = objects.sample(vk, rng)
            vp["yaw"] = float(rng.choice([0.0, math.pi])) + float(rng.normal(0, 0.25))
            person.params["pose"] = "ride"
            person.params["dir"] = 1 if math.cos(vp["yaw"]) > 0 else -1
            person.lift_m = 0.45 if vk == "bicycle" else 0.35
            person.order_bias = 0.05
            out.append(Placed(vk, vp, person.x_m, person.z_m))
        elif r < 0.22:
            up = objects.sample("umbrella", rng)
            up["height_m"] = person.params["height_m"] + 0.25
            out.append(Placed("umbrella", up, person.x_m, person.z_m, order_bias=0.05))
    for kind, mean in (
        ("car", 0.9),
        ("tree", 0.6),
        ("pole", 0.6),
        ("bollard", 0.3),
        ("planter", 0.4),
        ("cone", 0.2),
        ("sign_board", 0.3),
    ):
        for _ in range(_count(rng, mean, 3)):
            add(kind, 1.5 if kind == "car" else 0.4)
    return out


def render_image(
    seed: int, index: int, width_px: int = 960, height_px: int = 540, time_of_day: str | None = None
) -> Frame:
    """Training image ``index`` of ``seed``: a function of ``(seed, index)`` only.

    ``time_of_day`` (day, dusk, night or ir) replaces the drawn one after every draw, so the same scene,
    objects and labels come out in each style.
    """
    view = cached_view(seed, index // VIEW_GROUP, width_px, height_px)
    rng = np.random.default_rng([seed, index, 2])
    placed = random_objects(view, rng)
    light = random_lighting(rng)
    if time_of_day is not None:
        light = dataclasses.replace(light, time_of_day=time_of_day)
    return compose(view.camera, view.background, placed, light)
