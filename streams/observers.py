"""Frame observers: worker-wide listeners that see every processed frame of every camera.

A ``CameraProcessor`` gives each observer a ``FrameView`` after the detector and the false-alarm memory
ran and before the rules step. Observers are how features that watch a camera's picture without being a
rule hook into the runtime (the annotation sampler of real frames, the camera re-check of dispatched
cases): they may ask for full scans (``wants_full_scan``: the frame is detected whatever the motion gate
says), and they never stop a camera — an observer that raises is logged and the frame goes on.

Observers run on the processing thread: ``observe`` must be quick (copy what it keeps, hand slow work
such as uploads or database writes to a thread of its own).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from streams.capture import SampledFrame
from vision.config import CameraConfig
from vision.types import Detections

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FrameView:
    """What a processed frame showed.

    Attributes:
        camera: the camera's config at this frame.
        frame: the sampled frame (``frame.image`` is BGR; do not modify it, copy what you keep).
        ts_s: the stream time the rules use (epoch seconds for live cameras).
        detections: the model's detections after the false-alarm memory (carried ones when not detected).
        unknown: the static-object detector's ``unknown_object`` regions of this frame (empty when it is off).
        detected: whether the detector ran on this frame (False: ``detections`` are carried).
        model_version: the version of the model that gave ``detections``.
    """

    camera: CameraConfig
    frame: SampledFrame
    ts_s: float
    detections: Detections
    unknown: Detections
    detected: bool
    model_version: str


class FrameObserver(Protocol):
    def wants_full_scan(self, camera_id: str, ts_s: float) -> bool:
        """True: detect this camera's next frame whatever the motion gate says."""
        ...

    def observe(self, view: FrameView) -> None: ...


def wants_full_scan(observers: Sequence[FrameObserver], camera_id: str, ts_s: float) -> bool:
    """Whether any observer asks for a full scan; an observer that raises asks for none."""
    for observer in observers:
        try:
            if observer.wants_full_scan(camera_id, ts_s):
                return True
        except Exception as exc:
            log.warning(
                "camera %s: observer %s failed in wants_full_scan: %s", camera_id, _name(observer), exc
            )
    return False


def notify(observers: Sequence[FrameObserver], view: FrameView) -> None:
    """Give the view to every observer; one that raises is logged and the others still see it."""
    for observer in observers:
        try:
            observer.observe(view)
        except Exception as exc:
            log.warning("camera %s: observer %s failed: %s", view.camera.id, _name(observer), exc)


def _name(observer: object) -> str:
    return type(observer).__name__
