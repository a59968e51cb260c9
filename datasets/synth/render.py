"""Compose objects onto the street, then light, weather, blur and noise; labels from visible pixels.

Objects are painted far to near. Each opaque object writes its draw index into an id map where it
covers a pixel, so after painting, an object's visible pixels are the pixels of its own mask whose id is
not greater than its index (later, nearer objects overwrite). Smoke is translucent: it never hides what
is behind it, but nearer opaque objects hide it. A label is the box of the visible pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from datasets.synth import objects
from datasets.synth.background import Background, noise_bank
from datasets.synth.camera import Camera
from datasets.synth.sprite import Sprite

#: Objects less visible than this (fraction of their full mask, off-image parts counting as hidden)
#: get no label.
MIN_VISIBLE_FRACTION = 0.25
#: Labels narrower or shorter than this (px) are dropped as degenerate.
MIN_BOX_PX = 4
#: Colour of haze and rain fog per time of day (grey in IR, so the picture stays greyscale).
HAZE_BGR = {"day": (200, 200, 195), "dusk": (150, 160, 175), "night": (45, 40, 38), "ir": (70, 70, 70)}


@dataclass
class Placed:
    """One object in the scene: ``kind`` (class or distractor), its look, where it stands (m)."""

    kind: str
    params: objects.Params
    x_m: float
    z_m: float
    lift_m: float = 0.0  # raise the sprite (a rider on a saddle, smoke above a grill)
    phase: float = 0.0
    order_bias: float = 0.0  # >0 paints later than its depth says (rider after the bike)
    tag: str = ""  # caller's id (scenario actor), carried into the result
    jitter_px: tuple[int, int] = (0, 0)  # tiny frame-to-frame shake of a stationary object
    cache_key: object = None  # sprites with the same key are drawn once (stationary video actors)


@dataclass(frozen=True)
class Lighting:
    time_of_day: str = "day"  # day | dusk | night | ir (a CCTV camera in infrared night mode)
    weather: str = "clear"  # clear | overcast | rain | haze
    shadow_dx: float = 0.5  # shadow direction in image, per unit of object height (x, y)
    shadow_dy: float = 0.3
    shadow_strength: float = 0.45
    exposure: float = 1.0
    noise: float = 1.0
    blur_px: int = 0  # motion blur length
    seed: int = 0  # fixes lamp pools (and everything else when frame_seed is None)
    frame_seed: int | None = None  # videos: per-frame noise and rain, with the lamps kept still


@dataclass
class ObjectResult:
    tag: str
    kind: str
    class_id: int | None
    box_xyxy: tuple[int, int, int, int] | None  # visible pixels; None when not labelled
    visible_fraction: float
    depth_m: float


@dataclass
class Frame:
    image: np.ndarray  # (h, w, 3) BGR uint8
    objects: list[ObjectResult] = field(default_factory=list)

    def labels(self) -> list[tuple[int, tuple[int, int, int, int]]]:
        return [(o.class_id, o.box_xyxy) for o in self.objects if o.class_id is not None and o.box_xyxy]


def scales_at(camera: Camera, x_m: float, z_m: float) -> tuple[float, float, float, float, float, float]:
    """(u, v, depth, sx, sy, sd) for an object standing at (X, Z): pixel of its base point, its depth
    and pixels per metre across, upwards and away from the camera."""
    pts = np.array([[x_m, 0, z_m], [x_m, 1, z_m], [x_m + 0.5, 0, z_m]], np.float64)
    dx, dz = x_m - camera.x_m, z_m
    n = math.hypot(dx, dz) or 1.0
    pts = np.vstack([pts, [[x_m + 0.5 * dx / n, 0, z_m + 0.5 * dz / n]]])
    uv, zc = camera.project(pts)
    u, v = uv[0]
    sy = float(np.hypot(*(uv[1] - uv[0])))
    sx = camera.focal_px / max(zc[0], 1e-3)
    sd = max(0.0, float(v - uv[3][1]) * 2)
    return float(u), float(v), float(zc[0]), sx, sy, sd


def _paste_region(
    shape: tuple[int, int], ox: int, oy: int, sh: int, sw: int
) -> tuple[slice, slice, slice, slice] | None:
    h, w = shape
    x0, y0, x1, y1 = max(ox, 0), max(oy, 0), min(ox + sw, w), min(oy + sh, h)
    if x1 <= x0 or y1 <= y0:
        return None
    return slice(y0, y1), slice(x0, x1), slice(y0 - oy, y1 - oy), slice(x0 - ox, x1 - ox)


def _shadow(frame: np.ndarray, sprite: Sprite, ox: int, oy: int, light: Lighting, contact_w: float) -> None:
    """Darken the ground: a sheared, flattened copy of the mask plus a soft contact blob."""
    a = sprite.alpha
    h, w = a.shape
    strength = light.shadow_strength
    # at night the light is diffuse; in IR mode it comes from the camera, so shadows fall behind objects
    if light.time_of_day in ("night", "ir") or light.weather in ("overcast", "rain"):
        strength *= 0.35
        shear_x, squash = 0.0, -0.12
    else:
        shear_x, squash = light.shadow_dx, -light.shadow_dy
    ay = sprite.ay
    # Map canvas (x, y) -> (x + (ay - y) * shear_x, ay + (ay - y) * squash): base stays, top falls away.
    m = np.float32([[1, -shear_x, shear_x * ay], [0, -squash, ay + squash * ay]])
    corners = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], np.float32) @ m.T
    minx, miny = np.floor(corners.min(0)).astype(int)
    maxx, maxy = np.ceil(corners.max(0)).astype(int)
    sw, sh = int(maxx - minx) + 1, int(maxy - miny) + 1
    if sw <= 1 or sh <= 1 or sw * sh > 4_000_000:
        return
    m[0, 2] -= minx
    m[1, 2] -= miny
    shadow = cv2.warpAffine(a, m, (sw, sh), flags=cv2.INTER_LINEAR)
    reg = _paste_region(frame.shape[:2], ox + int(minx), oy + int(miny), sh, sw)
    if reg is None:
        return
    fy, fx, sy_, sx_ = reg
    k = shadow[sy_, sx_].astype(np.float32) * (strength / 255.0)
    frame[fy, fx] = (frame[fy, fx] * (1 - k[..., None])).astype(np.uint8)


def _composite(dst: np.ndarray, src: np.ndarray, alpha: np.ndarray) -> None:
    a = alpha.astype(np.float32)[..., None] * (1 / 255.0)
    d = dst.astype(np.float32)
    dst[:] = (d + (src.astype(np.float32) - d) * a).astype(np.uint8)


def compose(
    camera: Camera,
    background: Background,
    placed: list[Placed],
    light: Lighting,
    sprite_cache: dict[object, Sprite] | None = None,
) -> Frame:
    """Paint ``placed`` over ``background``; returns the finished image and per-object visibility."""
    rng = np.random.default_rng(light.seed)
    frame = background.albedo.copy()
    glow = background.glow.copy() if light.time_of_day != "day" else None
    depth = background.depth_m.copy()
    h, w = frame.shape[:2]
    id_map = np.full((h, w), -1, np.int16)
    staged = []
    for p in placed:
        u, v, zc, sx, sy, sd = scales_at(camera, p.x_m, p.z_m)
        if zc <= 0.5:
            continue
        staged.append((zc - p.order_bias, p, u, v, zc, sx, sy, sd))
    staged.sort(key=lambda s: -s[0])
    records = []
    for k, (_, p, u, v, zc, sx, sy, sd) in enumerate(staged):
        if sprite_cache is not None and p.cache_key is not None:
            sprite = sprite_cache.get(p.cache_key)
            if sprite is None:
                sprite = sprite_cache[p.cache_key] = objects.draw(p.kind, p.params, sx, sy, sd, p.phase)
        else:
            sprite = objects.draw(p.kind, p.params, sx, sy, sd, p.phase)
        ox = int(round(u - sprite.ax)) + p.jitter_px[0]
        oy = int(round(v - p.lift_m * sy - sprite.ay)) + p.jitter_px[1]
        sh, sw = sprite.alpha.shape
        if sprite.opaque and p.lift_m == 0:
            _shadow(frame, sprite, ox, oy, light, sw)
        reg = _paste_region((h, w), ox, oy, sh, sw)
        records.append((k, p, sprite, ox, oy, zc))
        if reg is None:
            continue
        fy, fx, sy_, sx_ = reg
        _composite(frame[fy, fx], sprite.rgb[sy_, sx_], sprite.alpha[sy_, sx_])
        if sprite.opaque:
            cover = sprite.alpha[sy_, sx_] >= 128
            id_map[fy, fx][cover] = k
            depth[fy, fx][cover] = zc
            if glow is not None:
                glow[fy, fx][cover] = 0
        if glow is not None and sprite.glow is not None:
            np.maximum(glow[fy, fx], sprite.glow[sy_, sx_], out=glow[fy, fx])
    results = []
    for k, p, sprite, ox, oy, zc in records:
        cls = objects.CLASS_NAMES.index(p.kind) if p.kind in objects.CLASS_NAMES else None
        mask = sprite.label_mask
        total = int(np.count_nonzero(mask))
        box = None
        frac = 0.0
        reg = _paste_region((h, w), ox, oy, *mask.shape)
        if total and reg is not None:
            fy, fx, sy_, sx_ = reg
            vis = mask[sy_, sx_] & (id_map[fy, fx] <= k)
            nvis = int(np.count_nonzero(vis))
            frac = nvis / total
            if nvis:
                ys = np.flatnonzero(vis.any(axis=1))
                xs = np.flatnonzero(vis.any(axis=0))
                x0, x1 = int(xs[0]) + fx.start, int(xs[-1]) + fx.start + 1
                y0, y1 = int(ys[0]) + fy.start, int(ys[-1]) + fy.start + 1
                if frac >= MIN_VISIBLE_FRACTION and x1 - x0 >= MIN_BOX_PX and y1 - y0 >= MIN_BOX_PX:
                    box = (x0, y0, x1, y1)
        results.append(ObjectResult(p.tag, p.kind, cls if box else None, box, frac, zc))
    image = _finish(frame, glow, depth, light, rng, camera)
    return Frame(image=image, objects=results)


def _finish(
    frame: np.ndarray,
    glow: np.ndarray | None,
    depth: np.ndarray,
    light: Lighting,
    rng: np.random.Generator,
    camera: Camera,
) -> np.ndarray:
    """Light, weather, blur and sensor noise. Uses OpenCV's saturating uint8 arithmetic for speed."""
    h, w = frame.shape[:2]
    frame_rng = rng if light.frame_seed is None else np.random.default_rng([light.seed, light.frame_seed])
    tod = light.time_of_day
    if tod == "day":
        gain = light.exposure * (0.8 if light.weather in ("overcast", "rain") else 1.0)
        out = cv2.convertScaleAbs(frame, alpha=gain)
    elif tod == "ir":
        out = _infrared(frame, glow, depth, light, rng, frame_rng)
    else:
        # Ambient plus warm pools of light from street lamps, computed coarse and upsampled.
        amb = np.array((0.55, 0.5, 0.45) if tod == "dusk" else (0.32, 0.24, 0.2), np.float32) * light.exposure
        small = np.zeros((h // 8, w // 8), np.float32)
        for _ in range(int(rng.integers(1, 5))):
            c = (int(rng.integers(0, w // 8)), int(rng.integers(h // 16, h // 8)))
            cv2.circle(small, c, int(rng.integers(w // 40, w // 14)), float(rng.uniform(0.4, 0.9)), -1)
        small = cv2.GaussianBlur(small, (0, 0), w / 100) * (0.5 if tod == "dusk" else 1.0)
        lm_small = amb + small[..., None] * np.array([0.55, 0.8, 1.0], np.float32)
        if tod == "dusk":
            lm_small *= np.array([0.8, 0.92, 1.12], np.float32)
        light_map = cv2.resize(np.clip(lm_small * 128, 0, 255).astype(np.uint8), (w, h))
        out = cv2.multiply(frame, light_map, scale=1 / 128)
        if glow is not None and glow.any():
            g3 = cv2.merge([glow, glow, glow])
            out = cv2.add(out, cv2.multiply(frame, g3, scale=(1.1 if tod == "night" else 0.5) / 255))
            if tod == "night":  # bloom around bright things
                gs = cv2.resize(glow, (w // 4, h // 4), interpolation=cv2.INTER_AREA)
                gs = cv2.GaussianBlur(gs, (0, 0), 2)
                bloom = cv2.resize(cv2.convertScaleAbs(gs, alpha=0.45), (w, h))
                out = cv2.add(
                    out,
                    cv2.merge(
                        [cv2.convertScaleAbs(bloom, alpha=0.7), cv2.convertScaleAbs(bloom, alpha=0.9), bloom]
                    ),
                )
    if light.weather in ("haze", "rain", "overcast"):
        vis_m = {"haze": float(rng.uniform(40, 120)), "rain": float(rng.uniform(60, 160)), "overcast": 300.0}[
            light.weather
        ]
        d_small = cv2.resize(depth, (w // 2, h // 2), interpolation=cv2.INTER_NEAREST)
        fog = (1 - np.exp(-np.minimum(d_small, 1e3) / vis_m)) * 0.85
        fog = cv2.resize(fog.astype(np.float32), (w, h))
        haze = np.empty_like(out)
        haze[:] = HAZE_BGR[tod]
        out = cv2.blendLinear(out, haze, 1 - fog, fog)
    if light.weather == "rain":
        streaks = np.zeros((h, w), np.uint8)
        slant = float(frame_rng.uniform(-0.3, 0.3))
        for _ in range(int(frame_rng.integers(150, 500))):
            x, y = int(frame_rng.integers(0, w)), int(frame_rng.integers(0, h))
            ln = int(frame_rng.integers(8, 25))
            cv2.line(streaks, (x, y), (int(x + slant * ln), y + ln), int(frame_rng.integers(25, 70)), 1)
        out = cv2.add(out, cv2.merge([streaks, streaks, streaks]))
    if light.blur_px >= 3:
        k = np.zeros((light.blur_px, light.blur_px), np.float32)
        ang = float(frame_rng.uniform(0, math.pi))
        c = light.blur_px // 2
        p0 = (int(round(c - c * math.cos(ang))), int(round(c - c * math.sin(ang))))
        p1 = (int(round(c + c * math.cos(ang))), int(round(c + c * math.sin(ang))))
        cv2.line(k, p0, p1, 1.0, 1)
        k /= max(float(k.sum()), 1e-6)
        out = cv2.filter2D(out, -1, k)
    if light.noise > 0 and h < 2048 and w < 2048:
        fine, _ = noise_bank()
        y, x = int(frame_rng.integers(0, 2048 - h)), int(frame_rng.integers(0, 2048 - w))
        amp = light.noise * {"night": 2.2, "ir": 3.0}.get(tod, 1.0) * 0.5
        n = fine[y : y + h, x : x + w]
        if amp != 1.0:
            n = (n * amp).astype(np.int16)
        out = cv2.add(out, cv2.merge([n, n, n]), dtype=cv2.CV_8U)
    return out


def _infrared(
    frame: np.ndarray,
    glow: np.ndarray | None,
    depth: np.ndarray,
    light: Lighting,
    rng: np.random.Generator,
    frame_rng: np.random.Generator,
) -> np.ndarray:
    """A street camera in IR night mode: greyscale (3 equal channels), lit by its own illuminator.

    The IR-cut filter is out, so near-infrared reflectance makes the picture, not visible colour: most dyes
    are transparent in NIR (coloured fabric and paint look light whatever their hue), foliage is bright
    (chlorophyll reflects NIR) and the whole scene is flat and low in contrast. The illuminator sits at the
    camera: brightness falls off with distance (inverse square) and away from the beam's axis, so near things
    in the centre burn out while the edges and the far street sink into the dark. Lamps and lit windows
    still shine, with a little bloom; the sensor noise is strong (see the gain in ``_finish``).

    Args:
        frame: (h, w, 3) BGR uint8 albedo with objects and shadows.
        glow: (h, w) uint8 emission, or None.
        depth: (h, w) float32 metres along the view axis (sky 1e4).
        light: its ``exposure`` scales the illuminator.
        rng: draws the still parts (beam, range, albedo mapping) from ``light.seed``, so a video's frames
            share them.
        frame_rng: draws the per-frame sensor pattern.

    Returns:
        (h, w, 3) uint8 with B == G == R.
    """
    h, w = frame.shape[:2]
    f = frame.astype(np.float32)
    b, g, r = f[..., 0], f[..., 1], f[..., 2]
    # silicon is most sensitive towards red; the brightest channel stands for "dye that NIR goes through"
    nir = 0.3 * (0.1 * b + 0.35 * g + 0.55 * r) + 0.7 * f.max(axis=2)
    nir += 1.2 * np.clip(g - np.maximum(r, b), 0, None)  # foliage
    mid = float(rng.uniform(105, 140))
    nir = mid + (nir - mid) * float(rng.uniform(0.4, 0.6))
    # The beam: a broad Gaussian around a point near the centre, falling off with distance.
    cx, cy = w * float(rng.uniform(0.4, 0.6)), h * float(rng.uniform(0.45, 0.7))
    sigma = float(rng.uniform(0.35, 0.6)) * math.hypot(w, h)
    range_m = float(rng.uniform(7, 16))  # where the illuminator's irradiance has halved
    power = float(rng.uniform(1.1, 1.7)) * light.exposure
    ambient = float(rng.uniform(0.04, 0.12))
    glow_gain = float(rng.uniform(0.7, 1.0))  # drawn always: a video's later draws must not depend on glow
    ys, xs = np.ogrid[:h, :w]
    beam = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma**2)).astype(np.float32)
    reach = 1 / (1 + (np.minimum(depth, 1e3) / range_m) ** 2)
    out = nir * (ambient + power * beam * reach)
    if glow is not None and glow.any():
        gl = glow.astype(np.float32)
        out += gl * glow_gain
        small = cv2.resize(gl, (max(w // 4, 1), max(h // 4, 1)), interpolation=cv2.INTER_AREA)
        out += cv2.resize(cv2.GaussianBlur(small, (0, 0), 2.5), (w, h)) * 0.6
    # blotchy low-frequency noise of a cheap sensor at full gain
    _, coarse = noise_bank()
    y, x = int(frame_rng.integers(0, 2048 - min(h, 2047))), int(frame_rng.integers(0, 2048 - min(w, 2047)))
    patch = coarse[y : y + h, x : x + w]
    if patch.shape == (h, w):
        out += patch * 0.35
    grey = np.clip(out, 0, 255).astype(np.uint8)
    return cv2.merge([grey, grey, grey])
