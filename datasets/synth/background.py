"""Render the static street (ground plane in perspective, curbs, lane marks, shop fronts, sky).

Ground and facades are painted once into flat textures in world units (an "atlas"), then every pixel's
ray is intersected with the ground and the two building planes and one ``cv2.remap`` samples the atlas.
The atlas's 4th channel marks what glows at night (shop windows, signs).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from datasets.synth.camera import Camera
from datasets.synth.layout import Z_FAR_M, Z_NEAR_M, Shop, StreetLayout

RES_X_M = 0.04  # ground texel across the street
RES_Z_M = 0.06  # ground/facade texel along the street
RES_Y_M = 0.06  # facade texel upwards


@functools.cache
def noise_bank() -> tuple[np.ndarray, np.ndarray]:
    """Per-process noise textures from a fixed seed: fine (int16) and coarse (int16), 2048x2048."""
    rng = np.random.default_rng(20240611)
    fine = rng.integers(-12, 13, (2048, 2048), dtype=np.int16)
    coarse_small = rng.normal(0, 14, (48, 48)).astype(np.float32)
    coarse = cv2.resize(coarse_small, (2048, 2048), interpolation=cv2.INTER_CUBIC).astype(np.int16)
    return fine, coarse


def _noise(rng: np.random.Generator, h: int, w: int, amp_fine: float, amp_coarse: float) -> np.ndarray:
    fine, coarse = noise_bank()
    out = np.zeros((h, w), np.int16)
    for bank, amp in ((fine, amp_fine), (coarse, amp_coarse)):
        if amp <= 0:
            continue
        y, x = int(rng.integers(0, 2048 - min(h, 2047))), int(rng.integers(0, 2048 - min(w, 2047)))
        block = bank[y : y + h, x : x + w]
        if block.shape != (h, w):  # larger than the bank: tile it
            block = np.tile(bank, (h // 2048 + 1, w // 2048 + 1))[:h, :w]
        out += block if amp == 1 else (block * amp).astype(np.int16)
    return out


def _add_noise(tex: np.ndarray, noise: np.ndarray) -> None:
    """Add signed noise (h, w) int16 to the colour channels of a BGRA texture in place."""
    b, g, r, a = cv2.split(tex)
    tex[:] = cv2.merge([cv2.add(c, noise, dtype=cv2.CV_8U) for c in (b, g, r)] + [a])


def _jitter(rng: np.random.Generator, bgr: tuple[int, int, int], amount: int) -> np.ndarray:
    d = rng.integers(-amount, amount + 1, 3)
    return np.array([min(max(int(c) + int(e), 0), 255) for c, e in zip(bgr, d, strict=True)], np.uint8)


_SIDEWALK_COLOURS = [
    (150, 150, 150),
    (120, 120, 160),
    (140, 160, 175),
    (110, 115, 120),
    (170, 170, 165),
    (95, 105, 150),
]


def _ground_texture(layout: StreetLayout, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """BGRA ground texture, rows = Z (from ``Z_NEAR_M``), cols = X (from the returned x origin)."""
    x0 = layout.x_left_bld_m - 0.5
    cols = int((layout.x_right_bld_m + 0.5 - x0) / RES_X_M) + 1
    rows = int((Z_FAR_M - Z_NEAR_M) / RES_Z_M) + 1
    tex = np.zeros((rows, cols, 4), np.uint8)

    def cx(x_m: float) -> int:
        return min(max(round((x_m - x0) / RES_X_M), 0), cols)

    def rz(z_m: float) -> int:
        return min(max(round((z_m - Z_NEAR_M) / RES_Z_M), 0), rows)

    # Road.
    road_grey = (
        int(rng.integers(55, 100)) if layout.road_material == "asphalt" else int(rng.integers(125, 165))
    )
    road = _jitter(rng, (road_grey, road_grey, road_grey + 3), 6)
    a, b = cx(layout.x_left_curb_m), cx(layout.x_right_curb_m)
    tex[:, a:b, :3] = road
    if layout.road_material == "concrete":
        slab_rows = max(1, int(5.0 / RES_Z_M))
        tex[::slab_rows, a:b, :3] = road // 2 + 20
    # Lane marks: dashed white between lanes, solid edge lines, sometimes a double yellow centre line.
    lane_w = (layout.x_right_curb_m - layout.x_left_curb_m) / max(layout.lanes, 1)
    period = int(rng.uniform(6, 10) / RES_Z_M)
    dash = int(period * rng.uniform(0.3, 0.5))
    mark_w = max(2, int(0.15 / RES_X_M))
    white = _jitter(rng, (225, 225, 225), 15)
    for k in range(1, layout.lanes):
        x = cx(layout.x_left_curb_m + k * lane_w)
        mask = (np.arange(rows) % period) < dash
        tex[mask, x - mark_w // 2 : x + mark_w // 2 + 1, :3] = white
    if layout.lanes >= 2 and rng.random() < 0.4:
        xm = cx((layout.x_left_curb_m + layout.x_right_curb_m) / 2)
        tex[:, xm - mark_w - 1 : xm - 1, :3] = (40, 190, 220)
        tex[:, xm + 1 : xm + mark_w + 1, :3] = (40, 190, 220)
    for edge in (layout.x_left_curb_m + 0.3, layout.x_right_curb_m - 0.3):
        x = cx(edge)
        tex[:, x - mark_w // 2 : x + mark_w // 2 + 1, :3] = white
    # Sidewalks: tiles, brick or concrete slabs.
    for xa, xb in (
        (layout.x_left_bld_m, layout.x_left_curb_m),
        (layout.x_right_curb_m, layout.x_right_bld_m),
    ):
        sa, sb = cx(xa), cx(xb)
        base = _jitter(rng, _SIDEWALK_COLOURS[rng.integers(len(_SIDEWALK_COLOURS))], 12)
        tex[:, sa:sb, :3] = base
        joint = (base.astype(np.int16) * rng.uniform(0.6, 0.8)).astype(np.uint8)
        if layout.sidewalk_material == "brick":
            brick_z, brick_x = int(0.1 / RES_Z_M) + 1, int(0.2 / RES_X_M)
            tex[::brick_z, sa:sb, :3] = joint
            row_idx = np.arange(rows)
            odd = (row_idx // brick_z) % 2 == 1
            for c in range(sa, sb, brick_x):
                tex[~odd, c, :3] = joint
                if c + brick_x // 2 < sb:
                    tex[odd, c + brick_x // 2, :3] = joint
        else:
            size = (
                float(rng.uniform(0.3, 0.6))
                if layout.sidewalk_material == "tiles"
                else float(rng.uniform(1, 2))
            )
            tex[:: max(1, int(size / RES_Z_M)), sa:sb, :3] = joint
            tex[:, sa : sb : max(1, int(size / RES_X_M)), :3] = joint
        # Curb stone along the road edge.
        curb_x = cx(xb if xa < layout.x_left_curb_m + 0.01 and xb <= layout.x_left_curb_m else xa)
        tex[:, max(0, curb_x - 3) : curb_x + 4, :3] = _jitter(rng, (185, 185, 180), 15)
    if layout.blind_path_x_m:
        ba, bb = cx(layout.blind_path_x_m[0]), cx(layout.blind_path_x_m[1])
        yellow = _jitter(rng, (40, 185, 215), 20)
        tex[:, ba:bb, :3] = yellow
        tex[:: max(2, int(0.3 / RES_Z_M)), ba:bb, :3] = (yellow * 0.7).astype(np.uint8)
        tex[:, ba + 2 : bb - 1 : 3, :3] = (yellow * 0.8).astype(np.uint8)
    for z0, z1 in layout.bike_bays:
        xa, xb = cx(layout.bike_bay_x_m[0]), cx(layout.bike_bay_x_m[1])
        za, zb = rz(z0), rz(z1)
        bay_col = (235, 235, 235)
        cv2.rectangle(tex, (xa, za), (xb, zb), (*bay_col, 0), 3)
        step = max(4, int(0.9 / RES_Z_M))
        for z in range(za, zb, step):
            cv2.line(tex, (xa, z), (xb, min(zb, z + step // 2)), (*bay_col, 0), 2)
    for z0, z1 in layout.markets_z_m:  # painted night-market border: dashed yellow
        xa, xb = cx(layout.x_left_bld_m + 0.3), cx(layout.x_left_curb_m - 0.3)
        za, zb = rz(z0), rz(z1)
        mark = (30, 200, 235, 0)
        cv2.rectangle(tex, (xa, za), (xb, zb), mark, 3)
        for z in range(za, zb, max(4, int(1.0 / RES_Z_M))):
            cv2.line(tex, (xa + 6, z), (xa + 10, z), mark, 2)
    # Noise and stains so no band is a flat colour.
    _add_noise(tex, _noise(rng, rows, cols, float(rng.uniform(0.4, 1.0)), float(rng.uniform(0.3, 1.0))))
    for _ in range(int(rng.integers(0, 6))):
        c = (int(rng.integers(0, cols)), int(rng.integers(0, rows)))
        axes = (int(rng.integers(5, 25)), int(rng.integers(4, 15)))
        shade = int(rng.integers(50, 110))
        cv2.ellipse(tex, c, axes, float(rng.uniform(0, 180)), 0, 360, (shade, shade, shade, 0), -1)
    return tex, x0


def _facade_texture(
    shops: tuple[Shop, ...], height_m: float, style: str, rng: np.random.Generator, cols: int
) -> np.ndarray:
    """BGRA facade texture, rows = height from the top (row 0 = ``height_m``), cols = Z."""
    rows = max(2, int(height_m / RES_Y_M) + 1)
    tex = np.zeros((rows, cols, 4), np.uint8)

    def ry(y_m: float) -> int:
        return min(max(round((height_m - y_m) / RES_Y_M), 0), rows)

    def cz(z_m: float) -> int:
        return min(max(round((z_m - Z_NEAR_M) / RES_Z_M), 0), cols)

    if style == "wall":
        wall = _jitter(rng, (170, 175, 180), 30)
        tex[:, :, :3] = wall
        tex[: ry(height_m - 0.2), :, :3] = (wall * 0.7).astype(np.uint8)
        pier = max(3, int(3.0 / RES_Z_M))
        tex[:, ::pier, :3] = (wall * 0.8).astype(np.uint8)
    elif style == "trees":
        tex[:, :, :3] = _jitter(rng, (60, 120, 70), 25)
        tex[ry(1.0) :, :, :3] = _jitter(rng, (150, 150, 150), 20)
        bars = max(2, int(0.15 / RES_Z_M))
        tex[ry(1.8) : ry(1.0), ::bars, :3] = (40, 40, 40)
    else:
        floor_h = 3.2
        for shop in shops:
            a, b = cz(shop.z0_m), cz(shop.z1_m)
            if b <= a:
                continue
            tex[:, a:b, :3] = shop.wall_bgr
            # Upper-floor windows, some lit at night.
            y = floor_h + 1.2
            while y + 1.6 < height_m:
                z = shop.z0_m + 0.6
                while z + 1.3 < shop.z1_m:
                    lit = 255 if rng.random() < 0.35 else 0
                    glass = (90, 80, 70) if not lit else (120, 190, 230)
                    tex[ry(y + 1.5) : ry(y), cz(z) : cz(z + 1.2), :3] = _jitter(rng, glass, 15)
                    tex[ry(y + 1.5) : ry(y), cz(z) : cz(z + 1.2), 3] = lit
                    z += float(rng.uniform(1.8, 2.6))
                y += 3.0
            # Sign band and the shop front.
            tex[ry(floor_h + 0.9) : ry(floor_h), a + 2 : b - 2, :3] = shop.sign_bgr
            tex[ry(floor_h + 0.9) : ry(floor_h), a + 2 : b - 2, 3] = 200
            for _ in range(int(rng.integers(2, 6))):  # glyph-like blocks on the sign
                g0 = int(rng.integers(a + 4, max(a + 5, b - 12)))
                glyph = tuple(int(v) for v in 255 - np.array(shop.sign_bgr))
                tex[ry(floor_h + 0.75) : ry(floor_h + 0.15), g0 : g0 + int(rng.integers(5, 10)), :3] = glyph
            fa, fb = ry(floor_h - 0.1), ry(0.0)
            if shop.front == "shutter":
                grey = _jitter(rng, (165, 165, 160), 20)
                tex[fa:fb, a + 3 : b - 3, :3] = grey
                tex[fa:fb:3, a + 3 : b - 3, :3] = (grey * 0.75).astype(np.uint8)
            else:
                glass = _jitter(rng, (95, 85, 70) if shop.front == "glass" else (45, 45, 50), 15)
                tex[fa:fb, a + 3 : b - 3, :3] = glass
                tex[fa:fb, a + 3 : b - 3, 3] = 230
                mull = max(6, int(1.5 / RES_Z_M))
                tex[fa:fb, a + 3 : b - 3 : mull, :3] = (60, 60, 60)
                for _ in range(int(rng.integers(2, 8))):  # goods and people inside
                    g0 = int(rng.integers(a + 3, max(a + 4, b - 10)))
                    gh = int(rng.integers(5, 20))
                    tex[fb - gh : fb, g0 : g0 + int(rng.integers(3, 12)), :3] = rng.integers(20, 230, 3)
            if shop.awning_bgr is not None:
                tex[ry(floor_h) : ry(floor_h - 0.5), a:b, :3] = shop.awning_bgr
                tex[ry(floor_h) : ry(floor_h - 0.5), a:b:6, :3] = (230, 230, 230)
        tex[ry(0.25) :, :, :3] = (tex[ry(0.25) :, :, :3] * 0.7).astype(np.uint8)
    _add_noise(tex, _noise(rng, rows, cols, float(rng.uniform(0.3, 0.8)), float(rng.uniform(0.2, 0.7))))
    return tex


@dataclass
class Background:
    """The rendered empty street. ``albedo`` BGR uint8 (h, w, 3); ``glow`` uint8 (h, w) night emission;
    ``depth_m`` float32 (h, w) distance along the view axis (sky = 1e4)."""

    albedo: np.ndarray
    glow: np.ndarray
    depth_m: np.ndarray


SKY_DEPTH_M = 1e4


def render_background(camera: Camera, layout: StreetLayout, rng: np.random.Generator) -> Background:
    """Paint the textures and sample them through the camera."""
    ground, gx0 = _ground_texture(layout, rng)
    fcols = ground.shape[0]  # facade columns share the Z sampling of ground rows
    right = _facade_texture(layout.shops_right, layout.right_height_m, "shops", rng, fcols)
    left = _facade_texture(layout.shops_left, layout.left_height_m, layout.left_side, rng, fcols)
    width = max(ground.shape[1], fcols)
    atlas = np.zeros((ground.shape[0] + right.shape[0] + left.shape[0], width, 4), np.uint8)
    atlas[: ground.shape[0], : ground.shape[1]] = ground
    r0 = ground.shape[0]
    atlas[r0 : r0 + right.shape[0], :fcols] = right
    l0 = r0 + right.shape[0]
    atlas[l0 : l0 + left.shape[0], :fcols] = left

    dx, dy, dz = camera.pixel_rays()
    h_cam, x_cam = camera.height_m, camera.x_m
    big = np.float32(SKY_DEPTH_M)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_g = np.where(dy < -1e-6, -h_cam / dy, big).astype(np.float32)
        gx = x_cam + t_g * dx
        gz = t_g * dz
        t_r = np.where(dx > 1e-6, (layout.x_right_bld_m - x_cam) / dx, big).astype(np.float32)
        t_l = np.where(dx < -1e-6, (layout.x_left_bld_m - x_cam) / dx, big).astype(np.float32)
    ry_ = h_cam + t_r * dy
    rz_ = t_r * dz
    ly_ = h_cam + t_l * dy
    lz_ = t_l * dz
    ok_r = (ry_ >= 0) & (ry_ <= layout.right_height_m) & (rz_ > Z_NEAR_M) & (rz_ < Z_FAR_M)
    ok_l = (ly_ >= 0) & (ly_ <= layout.left_height_m) & (lz_ > Z_NEAR_M) & (lz_ < Z_FAR_M)
    ok_g = (
        (t_g < big)
        & (gz > Z_NEAR_M)
        & (gz < Z_FAR_M)
        & (gx >= layout.x_left_bld_m)
        & (gx <= layout.x_right_bld_m)
    )
    t_r = np.where(ok_r, t_r, big)
    t_l = np.where(ok_l, t_l, big)
    t_g = np.where(ok_g, t_g, big)
    depth = np.minimum(np.minimum(t_g, t_r), t_l)
    use_g = ok_g & (t_g <= depth)
    use_r = ok_r & ~use_g & (t_r <= depth)
    use_l = ok_l & ~use_g & ~use_r
    map_x = np.full(dx.shape, -10.0, np.float32)
    map_y = np.full(dx.shape, -10.0, np.float32)
    map_x[use_g] = (gx[use_g] - gx0) / RES_X_M
    map_y[use_g] = (gz[use_g] - Z_NEAR_M) / RES_Z_M
    map_x[use_r] = (rz_[use_r] - Z_NEAR_M) / RES_Z_M
    map_y[use_r] = r0 + (layout.right_height_m - ry_[use_r]) / RES_Y_M
    map_x[use_l] = (lz_[use_l] - Z_NEAR_M) / RES_Z_M
    map_y[use_l] = l0 + (layout.left_height_m - ly_[use_l]) / RES_Y_M
    sampled = cv2.remap(atlas, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    sky = ~(use_g | use_r | use_l)
    albedo = np.ascontiguousarray(sampled[..., :3])
    glow = np.ascontiguousarray(sampled[..., 3])
    if sky.any():
        rows = np.linspace(0, 1, camera.height_px, dtype=np.float32)[:, None, None]
        top = _jitter(rng, (205, 160, 120), 25).astype(np.float32)
        bottom = _jitter(rng, (215, 205, 195), 15).astype(np.float32)
        grad = (top * (1 - rows) + bottom * rows).astype(np.uint8)
        albedo = np.where(sky[..., None], np.broadcast_to(grad, albedo.shape), albedo)
        glow[sky] = 0
    depth = np.where(sky, big, depth).astype(np.float32)
    return Background(albedo=albedo, glow=glow, depth_m=depth)
