"""Motion gating: skip still frames, detect on change, scan periodically, carry detections in between."""

from __future__ import annotations

import numpy as np
import pytest

from streams.motion import GateReason, MotionDetector, MotionGate
from vision.config import MotionConfig


def frame(box: tuple[int, int, int, int] | None = None, noise_seed: int | None = None) -> np.ndarray:
    img = np.full((240, 320, 3), 40, np.uint8)
    if noise_seed is not None:  # sensor noise of a few grey levels must not count as motion
        rng = np.random.default_rng(noise_seed)
        img = np.clip(img.astype(np.int16) + rng.integers(-6, 7, img.shape), 0, 255).astype(np.uint8)
    if box is not None:
        x1, y1, x2, y2 = box
        img[y1:y2, x1:x2] = 220
    return img


def test_noise_is_not_motion_but_a_new_object_is() -> None:
    md = MotionDetector(MotionConfig())
    assert md.update(frame(noise_seed=0)) == 1.0  # first frame: no background yet
    assert md.update(frame(noise_seed=1)) == 0.0
    assert md.update(frame((100, 80, 160, 160), noise_seed=2)) > 0.02


def test_an_object_that_stays_stops_being_motion_within_a_second() -> None:
    gate = MotionGate(MotionConfig(full_scan_interval_s=60), grace_s=600)
    reasons = [gate.decide(frame((100, 80, 160, 160) if i >= 2 else None), i * 0.2).reason for i in range(12)]
    assert reasons[:3] == [GateReason.FIRST, GateReason.STILL, GateReason.MOTION]
    assert reasons[-5:] == [GateReason.STILL] * 5


@pytest.mark.parametrize(
    ("scan_s", "grace_s", "expected_interval_s"),
    [(10, 20, 10), (10, 8, 4), (30, 600, 30), (10, 0, 10)],
)
def test_scan_interval_is_capped_at_half_the_grace_window(
    scan_s: float, grace_s: float, expected_interval_s: float
) -> None:
    gate = MotionGate(MotionConfig(full_scan_interval_s=scan_s), grace_s=grace_s)
    assert gate.scan_interval_s == expected_interval_s
    still = frame()
    detected_at = [
        t for t in np.arange(0, 3 * expected_interval_s + 0.1, 0.2) if gate.decide(still, float(t)).detect
    ]
    assert np.allclose(
        detected_at, [0, expected_interval_s, 2 * expected_interval_s, 3 * expected_interval_s]
    )


def test_disabled_gate_detects_every_frame_and_reset_forces_detection() -> None:
    off = MotionGate(MotionConfig(enabled=False))
    assert all(off.decide(frame(), t).reason is GateReason.DISABLED for t in (0.0, 0.2, 0.4))
    on = MotionGate(MotionConfig())
    on.decide(frame(), 0.0)
    assert not on.decide(frame(), 0.2).detect
    on.reset()
    assert on.decide(frame(), 0.4).reason is GateReason.FIRST


def test_motion_outside_every_zone_is_ignored() -> None:
    zone = [[0.5, 0.0], [1.0, 0.0], [1.0, 1.0], [0.5, 1.0]]  # right half of the frame
    gate = MotionGate(MotionConfig(full_scan_interval_s=60), grace_s=600, zones=[zone])
    whole = MotionGate(MotionConfig(full_scan_interval_s=60), grace_s=600)
    for g in (gate, whole):
        g.decide(frame(), 0.0)
    left, right = frame((20, 80, 100, 160)), frame((220, 80, 300, 160))
    assert whole.decide(left, 0.2).reason is GateReason.MOTION
    assert gate.decide(left, 0.2).reason is GateReason.STILL  # a car on the road beside the sidewalk
    assert gate.decide(right, 0.4).reason is GateReason.MOTION  # something arriving in the zone
