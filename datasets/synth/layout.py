"""Street layout in world metres: bands across the street and named ground regions.

The street runs along +Z. Across it (X increasing): left building line, left sidewalk, road, curb,
right sidewalk (with an optional tactile "blind path" strip and bike bays), right building line.
Scenario zones are drawn from the named regions so they match what is rendered.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Far end of the modelled street (m); beyond it the view fades into haze.
Z_FAR_M = 90.0
#: The street starts behind the camera so the ground under a steep camera is covered.
Z_NEAR_M = -8.0


@dataclass(frozen=True)
class Shop:
    z0_m: float
    z1_m: float
    wall_bgr: tuple[int, int, int]
    sign_bgr: tuple[int, int, int]
    front: str  # "glass" | "shutter" | "open"
    awning_bgr: tuple[int, int, int] | None


@dataclass(frozen=True)
class StreetLayout:
    """Where things are across and along the street (all metres)."""

    x_left_bld_m: float
    x_left_curb_m: float
    x_right_curb_m: float
    x_right_bld_m: float
    lanes: int
    road_material: str  # "asphalt" | "concrete"
    sidewalk_material: str  # "tiles" | "brick" | "concrete"
    left_side: str  # "shops" | "wall" | "trees"
    blind_path_x_m: tuple[float, float] | None
    bike_bays: tuple[tuple[float, float], ...]  # Z ranges; X spans the outer part of the right sidewalk
    bike_bay_x_m: tuple[float, float]
    right_height_m: float
    left_height_m: float
    shops_right: tuple[Shop, ...] = field(default_factory=tuple)
    shops_left: tuple[Shop, ...] = field(default_factory=tuple)
    palette_seed: int = 0
    markets_z_m: tuple[tuple[float, float], ...] = ()  # painted night-market areas on the left sidewalk

    @property
    def road_width_m(self) -> float:
        return self.x_right_curb_m - self.x_left_curb_m

    def band_at(self, x_m: float) -> str:
        """Which band a ground X falls in: left_sidewalk, road, right_sidewalk or outside."""
        if self.x_left_bld_m <= x_m < self.x_left_curb_m:
            return "left_sidewalk"
        if self.x_left_curb_m <= x_m < self.x_right_curb_m:
            return "road"
        if self.x_right_curb_m <= x_m <= self.x_right_bld_m:
            return "right_sidewalk"
        return "outside"

    def region(self, name: str, z0_m: float, z1_m: float) -> np.ndarray:
        """(4, 2) world (X, Z) corners of a named ground region between ``z0_m`` and ``z1_m``.

        Names: road, right_sidewalk, left_sidewalk, blind_path, blind_path_walk (the strip and 0.75 m
        either side), bike_bay (X of the bays), frontage (the 1.5 m of sidewalk along the right shop
        fronts), curbside (the 1.5 m along the right curb), night_market (the left sidewalk inside its
        painted border).
        """
        xs = {
            "road": (self.x_left_curb_m, self.x_right_curb_m),
            "right_sidewalk": (self.x_right_curb_m, self.x_right_bld_m),
            "left_sidewalk": (self.x_left_bld_m, self.x_left_curb_m),
            "blind_path": self.blind_path_x_m,
            "bike_bay": self.bike_bay_x_m,
            "frontage": (self.x_right_bld_m - 1.5, self.x_right_bld_m),
            "curbside": (self.x_right_curb_m, self.x_right_curb_m + 1.5),
            "night_market": (self.x_left_bld_m + 0.3, self.x_left_curb_m - 0.3),
        }.get(name)
        if name in ("blind_path", "blind_path_walk") and not self.blind_path_x_m:
            raise ValueError(f"region {name!r}: this street has no blind path; set street.blind_path: true")
        if name == "blind_path_walk":  # the strip and the walking room beside it
            xs = (self.blind_path_x_m[0] - 0.75, self.blind_path_x_m[1] + 0.75)
        if xs is None:
            raise ValueError(
                f"unknown region {name!r}; use road, right_sidewalk, left_sidewalk, blind_path, "
                "blind_path_walk, bike_bay, frontage, curbside or night_market"
            )
        x0, x1 = xs
        return np.array([[x0, z0_m], [x1, z0_m], [x1, z1_m], [x0, z1_m]], np.float64)


_WALLS = [
    (200, 205, 210),
    (170, 180, 190),
    (150, 160, 175),
    (190, 175, 160),
    (120, 130, 150),
    (210, 200, 185),
]
_SIGNS = [
    (40, 40, 200),
    (200, 90, 30),
    (30, 140, 30),
    (30, 180, 220),
    (150, 40, 120),
    (60, 60, 60),
    (220, 220, 220),
]


def _shops(rng: np.random.Generator) -> tuple[Shop, ...]:
    shops = []
    z = float(rng.uniform(-8, -2))
    while z < Z_FAR_M:
        w = float(rng.uniform(3.5, 9.0))
        wall = tuple(
            int(c)
            for c in np.clip(np.array(_WALLS[rng.integers(len(_WALLS))]) + rng.integers(-20, 20, 3), 0, 255)
        )
        sign = tuple(
            int(c)
            for c in np.clip(np.array(_SIGNS[rng.integers(len(_SIGNS))]) + rng.integers(-25, 25, 3), 0, 255)
        )
        front = str(rng.choice(["glass", "shutter", "open", "glass"]))
        awning = tuple(int(c) for c in rng.integers(30, 230, 3)) if rng.random() < 0.35 else None
        shops.append(Shop(z, z + w, wall, sign, front, awning))  # type: ignore[arg-type]
        z += w
    return tuple(shops)


def random_layout(rng: np.random.Generator) -> StreetLayout:
    """A random street: road 6-14 m, sidewalks 2.5-7 m, shop fronts, optional blind path and bays."""
    lanes = int(rng.integers(1, 4))
    road_w = float(lanes * rng.uniform(3.0, 3.6) + rng.uniform(0, 2))
    right_w = float(rng.uniform(3.0, 7.5))
    left_w = float(rng.uniform(2.0, 5.0))
    x_rc = road_w / 2
    x_lc = -road_w / 2
    blind = None
    if rng.random() < 0.7:
        bx = x_rc + float(rng.uniform(0.35, 0.6)) * right_w
        blind = (bx, bx + 0.5)
    bay_x = (x_rc + 0.3, x_rc + min(2.0, right_w * 0.4))
    bays: list[tuple[float, float]] = []
    if rng.random() < 0.4:
        z = float(rng.uniform(6, 20))
        bays.append((z, z + float(rng.uniform(4, 10))))
    return StreetLayout(
        x_left_bld_m=x_lc - left_w,
        x_left_curb_m=x_lc,
        x_right_curb_m=x_rc,
        x_right_bld_m=x_rc + right_w,
        lanes=lanes,
        road_material=str(rng.choice(["asphalt", "asphalt", "concrete"])),
        sidewalk_material=str(rng.choice(["tiles", "brick", "concrete", "tiles"])),
        left_side=str(rng.choice(["shops", "wall", "trees", "shops"])),
        blind_path_x_m=blind,
        bike_bays=tuple(bays),
        bike_bay_x_m=bay_x,
        right_height_m=float(rng.uniform(4.5, 14)),
        left_height_m=float(rng.uniform(2.5, 12)),
        shops_right=_shops(rng),
        shops_left=_shops(rng),
        palette_seed=int(rng.integers(1 << 30)),
    )
