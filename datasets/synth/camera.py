"""A pinhole camera over a flat street: world metres <-> image pixels.

World axes: X across the street (metres, increasing to the right of the street axis), Y up, Z along
the street away from the camera's foot point. The camera stands at ``(x_m, height_m, 0)``, looks along
+Z turned by ``yaw_deg`` and tilted down by ``pitch_deg``; it never rolls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Camera:
    """Pinhole camera. ``width_px``/``height_px`` are the frame size; ``hfov_deg`` the horizontal view."""

    width_px: int
    height_px: int
    height_m: float = 6.0
    pitch_deg: float = 22.0
    yaw_deg: float = 0.0
    hfov_deg: float = 64.0
    x_m: float = 0.0

    @property
    def focal_px(self) -> float:
        return (self.width_px / 2) / math.tan(math.radians(self.hfov_deg) / 2)

    @property
    def centre(self) -> np.ndarray:
        return np.array([self.x_m, self.height_m, 0.0])

    def basis(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(right, up, forward) unit vectors in world coordinates."""
        p, y = math.radians(self.pitch_deg), math.radians(self.yaw_deg)
        fwd = np.array([math.sin(y) * math.cos(p), -math.sin(p), math.cos(y) * math.cos(p)])
        right = np.array([math.cos(y), 0.0, -math.sin(y)])
        up = np.cross(fwd, right)
        return right, up, fwd

    def project(self, points_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Project (n, 3) world points to (n, 2) pixels; also returns (n,) depth along the view axis (m).

        Points behind the camera get depth <= 0; callers must drop them.
        """
        pts = np.asarray(points_m, np.float64).reshape(-1, 3) - self.centre
        right, up, fwd = self.basis()
        xc, yc, zc = pts @ right, pts @ up, pts @ fwd
        safe = np.where(np.abs(zc) < 1e-6, 1e-6, zc)
        f = self.focal_px
        uv = np.stack([self.width_px / 2 + f * xc / safe, self.height_px / 2 - f * yc / safe], axis=1)
        return uv, zc

    def project_ground(self, x_m: float, z_m: float, y_m: float = 0.0) -> tuple[float, float, float]:
        """Pixel (u, v) and depth of one world point."""
        uv, zc = self.project(np.array([[x_m, y_m, z_m]]))
        return float(uv[0, 0]), float(uv[0, 1]), float(zc[0])

    def pixel_rays(self, step: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """World ray directions (dx, dy, dz) for every ``step``-th pixel, each (h, w) float32.

        Directions are scaled so that their component along the view axis is 1, hence the ray
        parameter ``t`` of a hit equals its depth.
        """
        right, up, fwd = self.basis()
        f = self.focal_px
        u = (np.arange(0, self.width_px, step, dtype=np.float32) + 0.5 - self.width_px / 2) / f
        v = (np.arange(0, self.height_px, step, dtype=np.float32) + 0.5 - self.height_px / 2) / f
        dirs = []
        for k in range(3):
            dirs.append((fwd[k] + u[None, :] * right[k] - v[:, None] * up[k]).astype(np.float32))
        return dirs[0], dirs[1], dirs[2]

    def ground_point(self, u_px: float, v_px: float) -> tuple[float, float] | None:
        """World (X, Z) where the ray through pixel (u, v) meets the ground, or None above the horizon."""
        right, up, fwd = self.basis()
        f = self.focal_px
        d = fwd + (u_px - self.width_px / 2) / f * right - (v_px - self.height_px / 2) / f * up
        if d[1] >= -1e-6:
            return None
        t = -self.height_m / d[1]
        return float(self.x_m + t * d[0]), float(t * d[2])

    def scale_at(self, x_m: float, z_m: float) -> float:
        """Pixels per metre for an object standing at (X, Z) (measured on its vertical extent)."""
        u0, v0, d = self.project_ground(x_m, z_m)
        u1, v1, _ = self.project_ground(x_m, z_m, 1.0)
        return float(math.hypot(u1 - u0, v1 - v0)) if d > 0 else 0.0
