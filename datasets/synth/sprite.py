"""A small drawing canvas in object metres, projected with a local 2.5-D camera approximation.

An object stands at its base point; the canvas maps local metres ``(x, y, d)`` (x right, y up, d away
from the camera along the ground) to canvas pixels with per-axis scales ``sx``, ``sy``, ``sd`` taken from
the real camera at the object's position. Colour is drawn without anti-aliasing and coverage (alpha)
with it, so edges stay the object's own colour.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

_SHIFT = 2
_ONE = 1 << _SHIFT

Colour = tuple[int, int, int] | Sequence[int] | np.ndarray


@dataclass
class Sprite:
    """A drawn object: ``rgb`` (h, w, 3) BGR uint8, ``alpha`` (h, w) uint8 coverage, anchor = canvas
    pixel of the object's base point. ``glow`` (h, w) uint8 marks what shines at night; ``dense`` is the
    labelled part of a translucent object (smoke), else None (then alpha >= 128 is the object)."""

    rgb: np.ndarray
    alpha: np.ndarray
    ax: float
    ay: float
    glow: np.ndarray | None = None
    dense: np.ndarray | None = None
    opaque: bool = True

    @property
    def label_mask(self) -> np.ndarray:
        return self.dense if self.dense is not None else self.alpha >= 128


def col(c: Colour) -> tuple[int, int, int]:
    return (int(c[0]), int(c[1]), int(c[2]))


class Canvas:
    """Drawing surface for one object. Extents in metres: half width, height, depth behind/in front."""

    def __init__(
        self,
        sx: float,
        sy: float,
        sd: float,
        half_w_m: float,
        h_m: float,
        d_back_m: float = 0.3,
        d_front_m: float = 0.3,
    ) -> None:
        self.sx, self.sy, self.sd = sx, sy, sd
        pad = 3
        w = int(2 * half_w_m * sx) + 2 * pad
        h = int(h_m * sy + (d_back_m + d_front_m) * sd) + 2 * pad
        self.ax = w / 2
        self.ay = h - pad - d_front_m * sd
        self.rgb = np.zeros((h, w, 3), np.uint8)
        self.alpha = np.zeros((h, w), np.uint8)
        self.glow: np.ndarray | None = None

    # -- coordinates ---------------------------------------------------------------------------
    def P(self, x: float, y: float, d: float = 0.0) -> tuple[float, float]:
        return (self.ax + x * self.sx, self.ay - y * self.sy - d * self.sd)

    def _fx(self, pts: Iterable[tuple[float, float, float] | tuple[float, float]]) -> np.ndarray:
        out = [self.P(*p) for p in pts]
        return np.round(np.asarray(out, np.float64) * _ONE).astype(np.int32)

    def px(self, metres: float) -> int:
        return max(1, int(round(metres * self.sx)))

    # -- primitives ----------------------------------------------------------------------------
    def poly(self, pts: Sequence[tuple[float, ...]], colour: Colour, alpha: int = 255, glow: int = 0) -> None:
        p = self._fx(pts)
        cv2.fillPoly(self.rgb, [p], col(colour), cv2.LINE_8, _SHIFT)
        cv2.fillPoly(self.alpha, [p], alpha, cv2.LINE_AA, _SHIFT)
        if glow:
            cv2.fillPoly(self._glow(), [p], glow, cv2.LINE_AA, _SHIFT)

    def line(
        self, a: tuple[float, ...], b: tuple[float, ...], colour: Colour, width_m: float, glow: int = 0
    ) -> None:
        self.polyline([a, b], colour, width_m, closed=False, glow=glow)

    def polyline(
        self,
        pts: Sequence[tuple[float, ...]],
        colour: Colour,
        width_m: float,
        closed: bool = False,
        glow: int = 0,
    ) -> None:
        p = self._fx(pts)
        t = self.px(width_m)
        cv2.polylines(self.rgb, [p], closed, col(colour), t, cv2.LINE_8, _SHIFT)
        cv2.polylines(self.alpha, [p], closed, 255, t, cv2.LINE_AA, _SHIFT)
        if glow:
            cv2.polylines(self._glow(), [p], closed, glow, t, cv2.LINE_AA, _SHIFT)

    def oval(
        self,
        centre: tuple[float, ...],
        rx_m: float,
        ry_m: float,
        colour: Colour,
        angle_deg: float = 0.0,
        alpha: int = 255,
        glow: int = 0,
        arc: tuple[int, int] = (0, 360),
    ) -> None:
        """An ellipse facing the camera (heads, fruit, bags); radii in metres."""
        cx, cy = self.P(*centre)
        axes = (max(1, int(rx_m * self.sx * _ONE)), max(1, int(ry_m * self.sy * _ONE)))
        c = (int(cx * _ONE), int(cy * _ONE))
        cv2.ellipse(self.rgb, c, axes, angle_deg, arc[0], arc[1], col(colour), -1, cv2.LINE_8, _SHIFT)
        cv2.ellipse(self.alpha, c, axes, angle_deg, arc[0], arc[1], alpha, -1, cv2.LINE_AA, _SHIFT)
        if glow:
            cv2.ellipse(self._glow(), c, axes, angle_deg, arc[0], arc[1], glow, -1, cv2.LINE_AA, _SHIFT)

    def ring(
        self,
        centre: tuple[float, float, float],
        r_m: float,
        yaw_rad: float,
        colour: Colour,
        width_m: float,
        fill: Colour | None = None,
    ) -> None:
        """A wheel: a vertical circle of radius ``r_m`` in the plane rotated by ``yaw_rad`` from side-on."""
        th = np.linspace(0, 2 * math.pi, 20, endpoint=False)
        ca, sa = math.cos(yaw_rad), math.sin(yaw_rad)
        x0, y0, d0 = centre
        pts = [(x0 + r_m * math.cos(t) * ca, y0 + r_m * math.sin(t), d0 + r_m * math.cos(t) * sa) for t in th]
        if fill is not None:
            self.poly(pts, fill)
        self.polyline(pts, colour, width_m, closed=True)

    def box(
        self,
        x0: float,
        x1: float,
        y0: float,
        y1: float,
        d0: float,
        d1: float,
        front: Colour,
        top: Colour | None = None,
    ) -> None:
        """An axis-aligned box seen from the front and above: its top face, then its front face."""
        if top is not None:
            self.poly([(x0, y1, d0), (x1, y1, d0), (x1, y1, d1), (x0, y1, d1)], top)
        self.poly([(x0, y0, d0), (x1, y0, d0), (x1, y1, d0), (x0, y1, d0)], front)

    def _glow(self) -> np.ndarray:
        if self.glow is None:
            self.glow = np.zeros(self.alpha.shape, np.uint8)
        return self.glow

    # -- output --------------------------------------------------------------------------------
    def finish(self, shade: float = 0.25, dense: np.ndarray | None = None, opaque: bool = True) -> Sprite:
        """Crop to the drawn pixels and apply a top-lit shading gradient (``shade`` = darkening at base)."""
        ys, xs = np.nonzero(self.alpha)
        if len(ys) == 0:
            return Sprite(np.zeros((1, 1, 3), np.uint8), np.zeros((1, 1), np.uint8), self.ax, self.ay)
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        rgb = self.rgb[y0:y1, x0:x1]
        if shade > 0 and rgb.shape[0] > 2:
            g = np.linspace(1.08, 1.08 - shade, rgb.shape[0], dtype=np.float32)[:, None, None]
            rgb = np.clip(rgb * g, 0, 255).astype(np.uint8)
        return Sprite(
            rgb=np.ascontiguousarray(rgb),
            alpha=np.ascontiguousarray(self.alpha[y0:y1, x0:x1]),
            ax=self.ax - x0,
            ay=self.ay - y0,
            glow=None if self.glow is None else np.ascontiguousarray(self.glow[y0:y1, x0:x1]),
            dense=None if dense is None else np.ascontiguousarray(dense[y0:y1, x0:x1]),
            opaque=opaque,
        )
