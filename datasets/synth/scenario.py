"""Scenario files: one camera view, its cameras/zones document, and a timeline of actors.

A scenario renders to an MP4, ``OUT.truth.json`` (the violations a correct system reports, with
times and boxes) and ``OUT.cameras.yaml`` (the embedded cameras document pointing at the MP4), so
``urbaneye replay --cameras OUT.cameras.yaml --video CAM=OUT.mp4`` runs it unchanged.
See docs/scenarios.md for the file format.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from datasets.synth import objects
from datasets.synth.background import Background, render_background
from datasets.synth.camera import Camera
from datasets.synth.layout import StreetLayout, random_layout
from datasets.synth.render import Lighting, Placed, scales_at
from vision.config import CamerasFile, ConfigError, ZoneConfig, parse_cameras
from vision.geometry import polygon_px
from vision.types import ViolationKind


class ScenarioError(ValueError):
    """A scenario file problem, with a message naming the item and the fix."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class CameraSpec(_Model):
    height_m: Annotated[float, Field(ge=1.5, le=30, description="camera height above the ground")] = 6.0
    pitch_deg: Annotated[float, Field(ge=3, le=80, description="downward tilt")] = 24.0
    yaw_deg: Annotated[float, Field(ge=-60, le=60, description="turn from the street axis, + = right")] = 15.0
    hfov_deg: Annotated[float, Field(ge=30, le=110, description="horizontal field of view")] = 62.0
    x_m: float = Field(0.0, description="camera position across the street (0 = road centre)")


class StreetSpec(_Model):
    """Overrides of the street drawn from ``style_seed`` (None keeps the drawn value)."""

    lanes: Annotated[int, Field(ge=1, le=4)] | None = None
    road_width_m: Annotated[float, Field(ge=3, le=30)] | None = None
    right_sidewalk_m: Annotated[float, Field(ge=1.5, le=15)] | None = None
    left_sidewalk_m: Annotated[float, Field(ge=1, le=15)] | None = None
    blind_path_from_curb_m: Annotated[float, Field(ge=0.3, le=10)] | None = Field(
        None, description="tactile strip's distance from the right curb; requires blind_path: true"
    )
    blind_path: bool | None = None
    bike_bays_z_m: list[tuple[float, float]] | None = Field(
        None, description="[[z0, z1], ...] along the street"
    )
    bike_bay_width_m: Annotated[float, Field(ge=0.8, le=5)] | None = None
    night_markets_z_m: list[tuple[float, float]] = Field(
        default_factory=list, description="[[z0, z1], ...] painted market areas on the left sidewalk"
    )
    sidewalk_material: Literal["tiles", "brick", "concrete"] | None = None
    left_side: Literal["shops", "wall", "trees"] | None = None


class ZoneRegion(_Model):
    region: str = Field(description="a StreetLayout.region name, e.g. right_sidewalk, bike_bay, night_market")
    z_m: tuple[float, float] = Field(description="extent along the street, metres")


class ViewSpec(_Model):
    style_seed: int = Field(0, description="picks the street's look (textures, shop fronts, colours)")
    time_of_day: Literal["day", "dusk", "night", "ir"] = "day"
    weather: Literal["clear", "overcast", "rain", "haze"] = "clear"
    camera: CameraSpec = Field(default_factory=CameraSpec)
    street: StreetSpec = Field(default_factory=StreetSpec)
    zone_regions: dict[str, ZoneRegion] = Field(
        default_factory=dict, description="zone id -> the ground region its polygon must cover (checked)"
    )


class Place(_Model):
    """A ground position: ``x_m``/``z_m`` in metres, or a region and a fraction across it."""

    z_m: float
    x_m: float | None = None
    region: str | None = None
    across: Annotated[float, Field(ge=0, le=1)] = 0.5

    @model_validator(mode="after")
    def verify_one_x(self) -> Place:
        if (self.x_m is None) == (self.region is None):
            raise ValueError("give exactly one of x_m or region (with across) for a place")
        return self


ActorKind = Literal[
    "person", "bicycle", "e_bike", "vending_stall", "garbage", "trash_bin", "grill", "smoke",
    "car", "umbrella", "tree", "pole", "bollard", "planter", "cone", "sign_board", "rock", "bench",
    "cardboard", "folding_table", "mattress",
]  # fmt: skip


class Actor(_Model):
    """One thing in the timeline. Moving: ``from`` -> ``at`` (enter_s..arrive_s), stationary at ``at``
    (arrive_s..leave_s), then ``at`` -> ``to`` (leave_s..exit_s). Without ``at`` it passes from ``from``
    to ``to``. Without ``from`` it appears at ``at``; without ``to`` it vanishes at ``leave_s``."""

    id: str = Field(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")
    kind: ActorKind
    seed: int = Field(0, description="appearance seed")
    look: dict[str, Any] = Field(default_factory=dict, description="appearance overrides (see objects.py)")
    enter_s: Annotated[float, Field(ge=0)] = 0.0
    arrive_s: Annotated[float, Field(ge=0)] | None = None
    leave_s: Annotated[float, Field(ge=0)] | None = None
    exit_s: Annotated[float, Field(ge=0)] | None = None
    from_: Place | None = Field(None, alias="from")
    at: Place | None = None
    to: Place | None = None
    rider: bool = Field(False, description="bicycle/e_bike: a person rides it while it moves")
    umbrella: bool = Field(False, description="person: walks under a hand-held umbrella")
    carries: Literal["bag", "garbage_bag", "backpack"] | None = Field(
        None, description="person: what they carry"
    )
    attendant: bool = Field(False, description="vending_stall/grill: a person stands by it while stationary")
    smoke: bool = Field(False, description="grill: smoke rises while it is stationary (lit)")
    group: str | None = Field(
        None, description="actors sharing a group form one violation (e.g. a bike cluster)"
    )

    @model_validator(mode="after")
    def verify_timeline(self) -> Actor:
        if self.at is None and (self.from_ is None or self.to is None):
            raise ValueError(f"actor '{self.id}' needs 'at' (to stop somewhere) or both 'from' and 'to'")
        if self.at is not None and self.arrive_s is None:
            raise ValueError(f"actor '{self.id}' has 'at' but no arrive_s; say when it gets there")
        if self.at is not None and self.from_ is not None and self.arrive_s <= self.enter_s:
            raise ValueError(
                f"actor '{self.id}': arrive_s must be after enter_s when it comes 'from' somewhere"
            )
        if self.to is not None and self.at is not None and (self.leave_s is None or self.exit_s is None):
            raise ValueError(f"actor '{self.id}' has 'to' after a stop; give leave_s and exit_s")
        if self.leave_s is not None and self.arrive_s is not None and self.leave_s <= self.arrive_s:
            raise ValueError(f"actor '{self.id}': leave_s must be after arrive_s")
        if self.exit_s is not None and self.exit_s <= self.enter_s:
            raise ValueError(f"actor '{self.id}': exit_s must be after enter_s")
        return self


class LightEvent(_Model):
    """A change of light over the whole picture or part of it, painted over the finished frame.

    ``cloud``: the whole picture dims by ``strength`` (ramps in over ``ramp_s``, back out at ``end_s``).
    ``lamp_on``: a pool of light of ``radius`` (fraction of the width) at ``at`` switches on at ``start_s``
    and stays. ``headlights``: a pool moves from ``at`` to ``to`` between ``start_s`` and ``end_s``.
    ``shadow_sweep``: a soft dark band of ``radius`` width sweeps from ``at`` to ``to``. ``slow_shadow``:
    a soft dark patch (a parked car's shadow as the sun moves) drifts from ``at`` to ``to`` and stays.
    Points are (x, y) fractions of the frame.
    """

    kind: Literal["cloud", "lamp_on", "headlights", "shadow_sweep", "slow_shadow"]
    start_s: Annotated[float, Field(ge=0)]
    end_s: Annotated[float, Field(ge=0)] | None = None
    ramp_s: Annotated[float, Field(ge=0, le=60)] = 1.0
    strength: Annotated[float, Field(gt=0, le=1.5)] = 0.4
    at: tuple[float, float] = (0.5, 0.5)
    to: tuple[float, float] | None = None
    radius: Annotated[float, Field(gt=0, le=2)] = 0.15

    @model_validator(mode="after")
    def verify_span(self) -> LightEvent:
        if self.kind in ("headlights", "shadow_sweep", "slow_shadow") and (
            self.to is None or self.end_s is None
        ):
            raise ValueError(f"light event '{self.kind}' moves: give 'to' and end_s")
        if self.end_s is not None and self.end_s <= self.start_s:
            raise ValueError(f"light event '{self.kind}': end_s must be after start_s")
        return self


class Scenario(_Model):
    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")
    description: str = ""
    duration_s: Annotated[float, Field(gt=0, le=3600)]
    must_not_alert: bool = Field(False, description="True: a correct system opens no violation at all")
    view: ViewSpec = Field(default_factory=ViewSpec)
    cameras: dict[str, Any] = Field(description="cameras document (vision.config) with exactly one camera")
    actors: list[Actor] = Field(default_factory=list)
    light_events: list[LightEvent] = Field(
        default_factory=list, description="lighting changes over time (clouds, lamps, headlights, shadows)"
    )
    suite: Literal["violations", "static_objects"] = Field(
        "violations",
        description="static_objects: scored for the static-object detector (objects the model has no class for)",
    )

    @model_validator(mode="after")
    def verify_actors(self) -> Scenario:
        seen: set[str] = set()
        for a in self.actors:
            if a.id in seen:
                raise ValueError(f"two actors have id '{a.id}'; actor ids must be unique")
            seen.add(a.id)
        return self


# ------------------------------------------------------------------------------------------ loading
def load_scenario(path: str | Path) -> tuple[Scenario, CamerasFile]:
    """Read and check a scenario file. Errors name the file, the item and the fix."""
    import yaml

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ScenarioError(f"cannot read scenario file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path}: not valid YAML: {exc}") from None
    return parse_scenario(raw, origin=str(path))


def parse_scenario(raw: dict[str, Any], origin: str = "scenario") -> tuple[Scenario, CamerasFile]:
    try:
        scenario = Scenario.model_validate(raw)
    except ValidationError as exc:
        lines = [
            f"{origin}: {'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        ]
        raise ScenarioError("\n".join(lines)) from None
    try:
        cams = parse_cameras(scenario.cameras, origin=f"{origin} cameras")
    except ConfigError as exc:
        raise ScenarioError(str(exc)) from None
    if len(cams.cameras) != 1:
        raise ScenarioError(f"{origin}: cameras must list exactly one camera, found {len(cams.cameras)}")
    zone_ids = {z.id for z in cams.cameras[0].zones}
    for zid in scenario.view.zone_regions:
        if zid not in zone_ids:
            raise ScenarioError(
                f"{origin}: view.zone_regions names zone '{zid}' that the camera does not have"
            )
    return scenario, cams


# --------------------------------------------------------------------------------------------- view
def build_layout(view: ViewSpec) -> StreetLayout:
    """The street of ``view``: drawn from ``style_seed``, then the explicit overrides applied."""
    lay = random_layout(np.random.default_rng([view.style_seed, 77]))
    st = view.street
    road_w = st.road_width_m or lay.road_width_m
    right_w = st.right_sidewalk_m or (lay.x_right_bld_m - lay.x_right_curb_m)
    left_w = st.left_sidewalk_m or (lay.x_left_curb_m - lay.x_left_bld_m)
    x_rc, x_lc = road_w / 2, -road_w / 2
    blind = lay.blind_path_x_m
    if st.blind_path is False:
        blind = None
    elif st.blind_path or st.blind_path_from_curb_m is not None or blind is not None:
        off = st.blind_path_from_curb_m if st.blind_path_from_curb_m is not None else right_w * 0.5
        if off + 0.5 > right_w:
            raise ScenarioError(
                f"blind_path_from_curb_m={off} does not fit a {right_w} m sidewalk; make it smaller"
            )
        blind = (x_rc + off, x_rc + off + 0.5)
    bay_w = st.bike_bay_width_m or min(2.0, right_w * 0.4)
    bays = tuple(tuple(b) for b in st.bike_bays_z_m) if st.bike_bays_z_m is not None else ()
    return dataclasses.replace(
        lay,
        x_left_bld_m=x_lc - left_w,
        x_left_curb_m=x_lc,
        x_right_curb_m=x_rc,
        x_right_bld_m=x_rc + right_w,
        lanes=st.lanes or lay.lanes,
        blind_path_x_m=blind,
        bike_bays=bays,  # type: ignore[arg-type]
        bike_bay_x_m=(x_rc + 0.3, x_rc + 0.3 + bay_w),
        sidewalk_material=st.sidewalk_material or lay.sidewalk_material,
        left_side=st.left_side or lay.left_side,
        markets_z_m=tuple(tuple(m) for m in st.night_markets_z_m),  # type: ignore[arg-type]
    )


def build_camera(view: ViewSpec, size: tuple[int, int]) -> Camera:
    c = view.camera
    return Camera(size[0], size[1], c.height_m, c.pitch_deg, c.yaw_deg, c.hfov_deg, c.x_m)


def region_polygon(camera: Camera, layout: StreetLayout, region: ZoneRegion) -> list[list[float]]:
    """The normalised image polygon of a ground region, clipped to the frame (for zone polygons)."""
    corners = layout.region(region.region, *region.z_m)
    # Sample the edges so clipping at the near plane and the frame keeps the shape.
    pts = []
    for i in range(4):
        a, b = corners[i], corners[(i + 1) % 4]
        for t in np.linspace(0, 1, 12, endpoint=False):
            x, z = a + (b - a) * t
            pts.append((x, 0.0, z))
    uv, depth = camera.project(np.array(pts))
    uv = uv[depth > 0.3]
    if len(uv) < 3:
        raise ScenarioError(
            f"region {region.region} z={region.z_m} is behind the camera; move it further away"
        )
    poly = _clip_to_frame(uv, camera.width_px, camera.height_px)
    if len(poly) < 3:
        raise ScenarioError(f"region {region.region} z={region.z_m} is outside the picture; pick other z_m")
    import cv2

    approx = cv2.approxPolyDP(np.float32(poly).reshape(-1, 1, 2), 1.5, True).reshape(-1, 2)
    return [[round(float(x) / camera.width_px, 4), round(float(y) / camera.height_px, 4)] for x, y in approx]


def _clip_to_frame(poly: np.ndarray, w: float, h: float) -> list[tuple[float, float]]:
    """Sutherland-Hodgman clip of a polygon to the frame rectangle."""
    out = [tuple(p) for p in poly]
    for axis, bound, keep_less in (
        (0, 0.0, False),
        (0, float(w), True),
        (1, 0.0, False),
        (1, float(h), True),
    ):
        src, out = out, []
        if not src:
            break
        for i, cur in enumerate(src):
            prev = src[i - 1]
            cin = cur[axis] <= bound if keep_less else cur[axis] >= bound
            pin = prev[axis] <= bound if keep_less else prev[axis] >= bound
            if cin != pin:
                t = (bound - prev[axis]) / (cur[axis] - prev[axis])
                out.append(tuple(prev[k] + (cur[k] - prev[k]) * t for k in range(2)))
            if cin:
                out.append(cur)
    return out  # type: ignore[return-value]


def polygon_iou(a: list[list[float]], b: list[list[float]], size: tuple[int, int] = (960, 540)) -> float:
    import cv2

    w, h = size
    ma, mb = np.zeros((h, w), np.uint8), np.zeros((h, w), np.uint8)
    cv2.fillPoly(ma, [np.int32(np.array(a) * (w, h))], 1)
    cv2.fillPoly(mb, [np.int32(np.array(b) * (w, h))], 1)
    inter = np.count_nonzero(ma & mb)
    union = np.count_nonzero(ma | mb)
    return inter / union if union else 0.0


def verify_zone_regions(scenario: Scenario, cams: CamerasFile, min_iou: float = 0.85) -> None:
    """Each zone named in ``view.zone_regions`` must cover the rendered region (IoU >= ``min_iou``)."""
    camera = build_camera(scenario.view, (960, 540))
    layout = build_layout(scenario.view)
    zones = {z.id: z for z in cams.cameras[0].zones}
    for zid, region in scenario.view.zone_regions.items():
        expected = region_polygon(camera, layout, region)
        got = [list(p) for p in zones[zid].polygon]
        iou = polygon_iou(expected, got)
        if iou < min_iou:
            raise ScenarioError(
                f"scenario '{scenario.name}': zone '{zid}' polygon does not match the rendered {region.region} "
                f"(IoU {iou:.2f}); use polygon: {json.dumps(expected)}"
            )


# ----------------------------------------------------------------------------------------- timeline
def place_xz(place: Place, layout: StreetLayout) -> tuple[float, float]:
    if place.x_m is not None:
        return place.x_m, place.z_m
    try:
        corners = layout.region(place.region, place.z_m, place.z_m)  # type: ignore[arg-type]
    except ValueError as exc:
        raise ScenarioError(str(exc)) from None
    x0, x1 = corners[0, 0], corners[1, 0]
    return float(x0 + (x1 - x0) * place.across), place.z_m


@dataclasses.dataclass(frozen=True)
class ActorState:
    x_m: float
    z_m: float
    moving: bool
    heading: tuple[float, float]  # world (dx, dz) of motion, or of the last motion
    distance_m: float  # walked so far (drives the gait)


def actor_window(actor: Actor, duration_s: float) -> tuple[float, float]:
    """[start, end) seconds when the actor is in the picture."""
    if actor.at is None:
        return actor.enter_s, actor.exit_s if actor.exit_s is not None else duration_s
    start = actor.enter_s if actor.from_ is not None else actor.arrive_s  # type: ignore[assignment]
    if actor.to is not None:
        end = actor.exit_s
    elif actor.leave_s is not None:
        end = actor.leave_s
    else:
        end = actor.exit_s if actor.exit_s is not None else duration_s
    return float(start), float(min(end, duration_s))  # type: ignore[arg-type]


def stay_window(actor: Actor, duration_s: float) -> tuple[float, float] | None:
    """[arrive, leave) seconds when the actor stands still at ``at``, or None for passers-by."""
    if actor.at is None:
        return None
    end = actor.leave_s if actor.leave_s is not None else duration_s
    return float(actor.arrive_s), float(min(end, duration_s))  # type: ignore[arg-type]


def actor_state(actor: Actor, layout: StreetLayout, t_s: float, duration_s: float) -> ActorState | None:
    start, end = actor_window(actor, duration_s)
    if not (start <= t_s < end):
        return None

    def lerp(
        p0: tuple[float, float], p1: tuple[float, float], t0: float, t1: float, done_m: float
    ) -> ActorState:
        f = min(1.0, max(0.0, (t_s - t0) / max(t1 - t0, 1e-6)))
        x, z = p0[0] + (p1[0] - p0[0]) * f, p0[1] + (p1[1] - p0[1]) * f
        d = math.hypot(p1[0] - p0[0], p1[1] - p0[1])
        return ActorState(x, z, True, (p1[0] - p0[0], p1[1] - p0[1]), done_m + d * f)

    if actor.at is None:
        return lerp(place_xz(actor.from_, layout), place_xz(actor.to, layout), actor.enter_s, end, 0.0)  # type: ignore[arg-type]
    at = place_xz(actor.at, layout)
    first = place_xz(actor.from_, layout) if actor.from_ is not None else at
    approach_m = math.hypot(at[0] - first[0], at[1] - first[1])
    heading = (at[0] - first[0], at[1] - first[1]) if approach_m > 0 else (1.0, 0.0)
    if actor.from_ is not None and t_s < actor.arrive_s:  # type: ignore[operator]
        return lerp(first, at, actor.enter_s, actor.arrive_s, 0.0)  # type: ignore[arg-type]
    stay_end = actor.leave_s if actor.leave_s is not None else duration_s
    if t_s < stay_end or actor.to is None:
        return ActorState(at[0], at[1], False, heading, approach_m)
    return lerp(at, place_xz(actor.to, layout), stay_end, actor.exit_s, approach_m)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------- render
VIOLATION_OF_KIND: dict[str, ViolationKind] = {
    "vending_stall": ViolationKind.STREET_VENDING,
    "garbage": ViolationKind.EXPOSED_GARBAGE,
    "bicycle": ViolationKind.BIKE_MISPARKING,
    "e_bike": ViolationKind.BIKE_MISPARKING,
    "grill": ViolationKind.OPEN_AIR_BARBECUE,
}


@dataclasses.dataclass
class ScenarioScene:
    """Everything needed to render any frame of a scenario."""

    scenario: Scenario
    cameras: CamerasFile
    camera: Camera
    layout: StreetLayout
    background: Background
    light: Lighting
    looks: dict[str, objects.Params]


def build_scene(scenario: Scenario, cams: CamerasFile, size: tuple[int, int], seed: int) -> ScenarioScene:
    camera = build_camera(scenario.view, size)
    layout = build_layout(scenario.view)
    bg = render_background(
        camera, layout, np.random.default_rng([scenario.view.style_seed, 78, size[0], size[1]])
    )
    light = Lighting(
        time_of_day=scenario.view.time_of_day,
        weather=scenario.view.weather,
        shadow_dx=0.45,
        shadow_dy=0.25,
        shadow_strength=0.4,
        exposure=1.0,
        noise=0.35,
        blur_px=0,
        seed=int(np.random.default_rng([seed, 5]).integers(1 << 31)),
    )
    looks = {}
    for a in scenario.actors:
        params = objects.sample(a.kind, np.random.default_rng([seed, a.seed, _stable(a.id)]))
        unknown = set(a.look) - set(params)
        if unknown:
            raise ScenarioError(
                f"actor '{a.id}': unknown look key(s) {sorted(unknown)} for {a.kind}; known: {sorted(params)}"
            )
        params.update(a.look)
        if a.kind == "person" and a.carries:
            params["bag"] = {"bag": "handbag", "garbage_bag": "plastic", "backpack": "backpack"}[a.carries]
            if a.carries == "garbage_bag":
                params["bag_colour"] = (25, 25, 25)
        looks[a.id] = params
    return ScenarioScene(scenario, cams, camera, layout, bg, light, looks)


def _stable(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")


def frame_placements(scene: ScenarioScene, t_s: float, frame_index: int) -> list[Placed]:
    """Who stands where at ``t_s``; stationary actors get a sub-pixel-free jitter of at most 1 px."""
    sc, cam, lay = scene.scenario, scene.camera, scene.layout
    out: list[Placed] = []
    for a in sc.actors:
        st = actor_state(a, lay, t_s, sc.duration_s)
        if st is None:
            continue
        params = dict(scene.looks[a.id])
        u, v, _, sx, sy, sd = scales_at(cam, st.x_m, st.z_m)
        hx, hz = st.heading
        n = math.hypot(hx, hz) or 1.0
        u1, v1, *_ = scales_at(cam, st.x_m + hx / n, st.z_m + hz / n)
        lateral_m, away_m = (u1 - u) / max(sx, 1e-6), (v - v1) / max(sd, 1e-6) if sd > 1e-3 else 0.0
        if a.kind == "person":
            params["walking"] = st.moving
            if st.moving or "facing" not in a.look:
                if abs(lateral_m) >= abs(away_m) * 0.7:
                    params["facing"], params["dir"] = "side", 1 if lateral_m >= 0 else -1
                else:
                    params["facing"] = "back" if away_m > 0 else "front"
        elif a.kind in ("bicycle", "e_bike", "car") and (st.moving or "yaw" not in a.look):
            yaw = math.atan2(away_m, lateral_m)
            if a.kind == "car":
                params["dir"] = 1 if lateral_m >= 0 else -1
                params["view"] = "side" if abs(lateral_m) > abs(away_m) else "rear"
            else:
                params["yaw"] = yaw
        phase = st.distance_m / 0.75 * math.pi
        jitter = (0, 0)
        key = None
        if not st.moving:
            r = np.random.default_rng([_stable(a.id), frame_index])
            jitter = (int(r.integers(-1, 2)) if r.random() < 0.3 else 0, 0)
            key = (a.id, "still")
        if a.kind == "smoke":
            phase, key = t_s * 2.0, None
        out.append(
            Placed(a.kind, params, st.x_m, st.z_m, phase=phase, tag=a.id, jitter_px=jitter, cache_key=key)
        )
        # Companions: rider on a moving bike, umbrella over a walker, attendant, smoke over a grill.
        if a.rider and st.moving and a.kind in ("bicycle", "e_bike"):
            rp = objects.sample("person", np.random.default_rng([a.seed, _stable(a.id), 9]))
            rp.update(
                pose="ride", facing="side", dir=1 if math.cos(params["yaw"]) >= 0 else -1, walking=False
            )
            out.append(Placed("person", rp, st.x_m, st.z_m, lift_m=0.45 if a.kind == "bicycle" else 0.35,
                              phase=phase, order_bias=0.05, tag=f"{a.id}:rider"))  # fmt: skip
        if a.umbrella and a.kind == "person":
            up = objects.sample("umbrella", np.random.default_rng([a.seed, _stable(a.id), 10]))
            up["height_m"] = params["height_m"] + 0.25
            out.append(Placed("umbrella", up, st.x_m, st.z_m, order_bias=0.05, tag=f"{a.id}:umbrella"))
        if a.attendant and not st.moving:
            ap = objects.sample("person", np.random.default_rng([a.seed, _stable(a.id), 11]))
            ap.update(facing="front", walking=False, bag="none")
            out.append(Placed("person", ap, st.x_m + 0.9, st.z_m + 0.6, tag=f"{a.id}:attendant",
                              cache_key=(a.id, "attendant")))  # fmt: skip
        if a.smoke and a.kind == "grill" and not st.moving:
            sp = objects.sample("smoke", np.random.default_rng([a.seed, _stable(a.id), 12]))
            sp.update(height_m=2.4, density=0.75)
            out.append(Placed("smoke", sp, st.x_m, st.z_m - 0.05, lift_m=0.75, phase=t_s * 2.0, order_bias=0.1,
                              tag=f"{a.id}:smoke"))  # fmt: skip
    return out


def zone_contains(
    zone: ZoneConfig, kind: str, box: tuple[float, float, float, float], wh: tuple[int, int]
) -> float:
    """How much the object is in the zone, by the kind's anchor (vision.config.DEFAULT_ANCHORS):
    1.0/0.0 for a point anchor, the box's overlap fraction for overlap anchors."""
    import cv2

    from vision.config import DEFAULT_ANCHORS, Anchor

    w, h = wh
    poly = polygon_px(zone.polygon, (w, h)).astype(np.float32)
    x0, y0, x1, y1 = box
    anchor = DEFAULT_ANCHORS[kind]
    if anchor == Anchor.BOTTOM_CENTER:
        return 1.0 if cv2.pointPolygonTest(poly, ((x0 + x1) / 2, y1), False) >= 0 else 0.0
    if anchor == Anchor.CENTER:
        return 1.0 if cv2.pointPolygonTest(poly, ((x0 + x1) / 2, (y0 + y1) / 2), False) >= 0 else 0.0
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [np.int32(poly)], 1)
    xa, ya, xb, yb = int(x0), int(y0), int(math.ceil(x1)), int(math.ceil(y1))
    area = max(1, (xb - xa) * (yb - ya))
    return float(np.count_nonzero(mask[ya:yb, xa:xb])) / area
