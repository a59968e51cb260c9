"""Lighting that changes during a scenario video: clouds, a street lamp switching on, headlights, shadows.

Each ``LightEvent`` of a scenario contributes a smooth gain map at ``t_s``; the product is multiplied into
the finished frame (after sensor noise, as a camera's auto-exposure would not undo it). The maps are
computed at 1/8 resolution and upsampled: they are smooth by construction. A scenario without light
events renders exactly as before.
"""

from __future__ import annotations

import cv2
import numpy as np

from datasets.synth.scenario import LightEvent

_COARSE = 8


def _ramp(t_s: float, ev: LightEvent) -> float:
    """0 before ``start_s``, up to 1 over ``ramp_s``, back to 0 over ``ramp_s`` after ``end_s`` (if any)."""
    r = max(ev.ramp_s, 1e-3)
    up = min(1.0, max(0.0, (t_s - ev.start_s) / r))
    if ev.end_s is None or ev.kind == "slow_shadow":
        return up
    return up * min(1.0, max(0.0, 1.0 - (t_s - ev.end_s) / r))


def _along(t_s: float, ev: LightEvent) -> tuple[float, float]:
    """Where a moving event is at ``t_s`` (fractions of the frame)."""
    end = ev.end_s if ev.end_s is not None else ev.start_s
    to = ev.to if ev.to is not None else ev.at
    f = min(1.0, max(0.0, (t_s - ev.start_s) / max(end - ev.start_s, 1e-3)))
    return ev.at[0] + (to[0] - ev.at[0]) * f, ev.at[1] + (to[1] - ev.at[1]) * f


def gain_map(events: list[LightEvent], t_s: float, size: tuple[int, int]) -> np.ndarray | None:
    """(h, w) float32 multiplicative gain at ``t_s``, or None when no event is active."""
    w, h = size
    cw, ch = max(2, w // _COARSE), max(2, h // _COARSE)
    xs = (np.arange(cw, dtype=np.float32) + 0.5) / cw
    ys = ((np.arange(ch, dtype=np.float32) + 0.5) / ch)[:, None]
    aspect = h / w  # distances in units of the frame width
    gain = np.ones((ch, cw), np.float32)
    active = False
    for ev in events:
        if t_s < ev.start_s:
            continue
        k = _ramp(t_s, ev)
        if ev.kind in ("headlights", "shadow_sweep") and ev.end_s is not None and t_s > ev.end_s + ev.ramp_s:
            continue
        if k <= 0:
            continue
        active = True
        if ev.kind == "cloud":
            gain *= 1.0 - ev.strength * k
            continue
        cx, cy = ev.at if ev.kind == "lamp_on" else _along(t_s, ev)
        dx, dy = xs - cx, (ys - cy) * aspect
        if ev.kind == "lamp_on":
            gain += ev.strength * k * np.exp(-(dx**2 + (dy * 1.6) ** 2) / ev.radius**2)
        elif ev.kind == "headlights":
            gain += ev.strength * k * np.exp(-(dx**2 + (dy * 2.5) ** 2) / ev.radius**2)
        elif ev.kind == "slow_shadow":
            gain *= 1.0 - ev.strength * k * np.exp(-(dx**2 + (dy * 2.5) ** 2) / ev.radius**2)
        else:  # shadow_sweep: a band across the direction of travel
            to = ev.to if ev.to is not None else ev.at
            ux, uy = to[0] - ev.at[0], (to[1] - ev.at[1]) * aspect
            n = float(np.hypot(ux, uy)) or 1.0
            dist = (dx * ux + dy * uy) / n
            gain *= 1.0 - ev.strength * k * np.exp(-(dist**2) / ev.radius**2)
    if not active:
        return None
    return cv2.resize(gain, (w, h), interpolation=cv2.INTER_LINEAR)


def apply_light_events(image: np.ndarray, events: list[LightEvent], t_s: float) -> np.ndarray:
    """``image`` (h, w, 3) BGR uint8 with the events' light at ``t_s``; the same array when none is active."""
    if not events:
        return image
    h, w = image.shape[:2]
    gain = gain_map(events, t_s, (w, h))
    if gain is None:
        return image
    out = image.astype(np.float32) * gain[..., None]
    return np.clip(out, 0, 255).astype(np.uint8)
