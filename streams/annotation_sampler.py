"""Sampling real frames for the annotation queue (issue 14): a frame observer of the stream worker.

Per camera it keeps frames worth a reviewer's labels:

- ``unknown_region``: a static-object region (``FrameView.unknown``) that no model detection explains
  (IoU below ``unknown_iou`` with every detection): something the model does not know.
- ``near_threshold``: on a detected frame, a detection whose score lies within ``near_margin`` above its
  class's threshold (``vision.detector`` keeps boxes at or above the per-class threshold): the model was
  unsure.
- ``periodic``: one frame per camera, local day and time-of-day bucket (``bucket_h`` hours), so the queue
  also holds day, dusk, night and empty scenes; the sampler asks for a full scan when one is due, so the
  frame carries fresh proposals.

It is bounded: at most ``max_per_hour`` samples per camera per hour of stream time, ``min_gap_s`` before a
non-periodic sample follows any other, ``max_pending_per_camera`` items waiting in the queue, and a frame whose thumbnail is
nearly identical (mean absolute difference below ``dedup_mad`` grey levels) to one of the camera's recent
samples is not kept. ``observe`` only decides and copies the picture; JPEG encoding, the upload to the
evidence store and the database row happen on the sampler's own thread, behind a bounded queue. A full
queue, a failing store or database drop the sample and count it (``counts``); the camera never waits.
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from streams.observers import FrameView
from urbaneye.annotations import NewItem, Proposal, add_item, frame_key, has_frame, pending_count
from urbaneye.db.annotations import SampleReason
from urbaneye.storage import EvidenceStore
from vision.config import CameraConfig, ModelConfig
from vision.digest import sha256_hex
from vision.geometry import iou_matrix
from vision.types import OBJECT_KINDS, UNKNOWN_OBJECT, Detections

log = logging.getLogger(__name__)

_THUMB_WH = (64, 36)


@dataclass(frozen=True)
class SamplerConfig:
    """How many frames of which kind the sampler keeps per camera."""

    near_margin: float = 0.15  # a score below threshold + margin is "near the threshold"
    unknown_iou: float = 0.3  # a static region overlapping a detection less than this is unexplained
    bucket_h: int = 4  # periodic samples: one per local day and bucket of this many hours
    min_gap_s: float = 300.0  # before a non-periodic sample follows any sample of the camera
    max_per_hour: int = 6  # samples of one camera per hour of stream time, all reasons
    max_pending_per_camera: int = 200  # the camera's items waiting for a reviewer
    dedup_mad: float = 4.0  # thumbnails closer than this (mean |difference|, grey levels) are duplicates
    dedup_history: int = 32  # recent samples per camera compared against
    queue_size: int = 16  # frames waiting for the writer thread
    jpeg_quality: int = 90


@dataclass(frozen=True)
class Sample:
    """A frame the policy kept: what the writer needs, copied off the processing thread."""

    camera_id: str
    image: np.ndarray
    frame_at: dt.datetime
    ts_s: float
    reason: SampleReason
    time_bucket: str
    model_version: str
    proposals: tuple[Proposal, ...]


@dataclass
class _CameraState:
    camera: CameraConfig
    live: bool
    last_sample_s: float | None = None
    recent_s: deque[float] = field(default_factory=deque)
    thumbs: deque[np.ndarray] = field(default_factory=deque)
    periodic_done: set[tuple[dt.date, int]] = field(default_factory=set)


def thumbnail(image: np.ndarray) -> np.ndarray:
    """A small grey float32 copy of a BGR frame, for near-duplicate checks."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    return cv2.resize(grey, _THUMB_WH, interpolation=cv2.INTER_AREA).astype(np.float32)


def proposals_of(detections: Detections, unknown: Detections) -> tuple[Proposal, ...]:
    """The model's boxes (known classes) and the static detector's regions, as proposals."""
    out = [
        Proposal(str(OBJECT_KINDS[int(c)]), tuple(float(v) for v in box), float(s), "model")
        for box, s, c in zip(detections.xyxy, detections.confidence, detections.class_id, strict=True)
        if 0 <= int(c) < len(OBJECT_KINDS)
    ]
    out += [
        Proposal(UNKNOWN_OBJECT, tuple(float(v) for v in box), float(s), "unknown")
        for box, s in zip(unknown.xyxy, unknown.confidence, strict=True)
    ]
    return tuple(out)


class SamplingPolicy:
    """Which frames to keep (pure: no I/O; time is the frames' ``ts_s``). Not thread-safe: one caller."""

    def __init__(self, config: SamplerConfig, model: ModelConfig) -> None:
        self.config = config
        self.model = model
        self._cameras: dict[str, _CameraState] = {}
        self.duplicates = 0

    def threshold(self, class_id: int) -> float:
        """The score threshold the detector applies to an object kind (``model.score_thresholds``)."""
        kind = str(OBJECT_KINDS[class_id])
        return self.model.score_thresholds.get(kind, self.model.default_score_threshold)

    def bucket(self, camera: CameraConfig, ts_s: float, live: bool) -> tuple[dt.date, int, str]:
        """``(local date, bucket index, "08-12")`` of a frame in the camera's time zone."""
        local = camera.local_time(ts_s, live)
        b = local.hour // self.config.bucket_h
        end = min(24, (b + 1) * self.config.bucket_h)
        return local.date(), b, f"{b * self.config.bucket_h:02d}-{end:02d}"

    def _budget_left(self, state: _CameraState, ts_s: float) -> bool:
        while state.recent_s and ts_s - state.recent_s[0] >= 3600.0:
            state.recent_s.popleft()
        return len(state.recent_s) < self.config.max_per_hour

    def periodic_due(self, camera_id: str, ts_s: float) -> bool:
        """A periodic sample of this camera is due at ``ts_s`` and its hourly budget allows one."""
        state = self._cameras.get(camera_id)
        if state is None:
            return False
        day, b, _ = self.bucket(state.camera, ts_s, state.live)
        return (day, b) not in state.periodic_done and self._budget_left(state, ts_s)

    def reason(self, view: FrameView) -> SampleReason | None:
        """Why the frame is worth labelling, before the rate limits (None: it is not)."""
        det = view.detections
        known = det[(det.class_id >= 0) & (det.class_id < len(OBJECT_KINDS))]
        if len(view.unknown):
            if not len(known):
                return SampleReason.UNKNOWN_REGION
            best = iou_matrix(view.unknown.xyxy, known.xyxy).max(axis=1)
            if bool((best < self.config.unknown_iou).any()):
                return SampleReason.UNKNOWN_REGION
        if view.detected and len(known):
            limits = np.array([self.threshold(int(c)) for c in known.class_id], np.float32)
            if bool((known.confidence < limits + self.config.near_margin).any()):
                return SampleReason.NEAR_THRESHOLD
        return None

    def decide(self, view: FrameView) -> Sample | None:
        """The sample to keep from this frame, or None; records it against the camera's limits."""
        cam = view.camera
        state = self._cameras.get(cam.id)
        if state is None:
            state = self._cameras[cam.id] = _CameraState(cam, view.frame.live)
        state.camera = cam  # a changed config (time zone) applies; the limits and history stay
        state.live = view.frame.live
        ts_s = view.ts_s
        day, b, label = self.bucket(cam, ts_s, state.live)
        reason = self.reason(view)
        if state.last_sample_s is not None and ts_s - state.last_sample_s < self.config.min_gap_s:
            reason = None
        if reason is None and (day, b) not in state.periodic_done and view.detected:
            reason = SampleReason.PERIODIC
        if reason is None or not self._budget_left(state, ts_s):
            return None
        # any sample covers its time-of-day bucket: the periodic one is for buckets nothing else sampled
        state.periodic_done = {k for k in state.periodic_done if k[0] >= day - dt.timedelta(days=1)}
        state.periodic_done.add((day, b))
        thumb = thumbnail(view.frame.image)
        if any(float(np.abs(thumb - t).mean()) < self.config.dedup_mad for t in state.thumbs):
            self.duplicates += 1
            state.last_sample_s = ts_s  # a scene that stays the same is compared again after the gap only
            return None
        state.thumbs.append(thumb)
        while len(state.thumbs) > self.config.dedup_history:
            state.thumbs.popleft()
        state.recent_s.append(ts_s)
        state.last_sample_s = ts_s
        return Sample(
            cam.id,
            view.frame.image.copy(),
            view.frame.frame_time,
            ts_s,
            reason,
            label,
            view.model_version,
            proposals_of(view.detections, view.unknown),
        )


class AnnotationSampler:
    """The frame observer: ``SamplingPolicy`` on the processing thread, a writer thread for the I/O.

    Args:
        sessions: a session factory (``urbaneye.db.session.session_factory``).
        store: the evidence store the frames go to.
        model: the cameras file's model config (score thresholds).
        config: the sampling limits.

    ``counts``: ``sampled`` (kept by the policy), ``queued`` (items written), ``dropped_full`` (the writer
    was behind), ``dropped_pending`` (the camera's queue was at its bound), ``duplicates`` (near-identical
    frames, or the same bytes already queued), ``failed`` (store or database errors).
    """

    def __init__(
        self,
        sessions: Callable[[], Any],
        store: EvidenceStore,
        model: ModelConfig,
        config: SamplerConfig | None = None,
    ) -> None:
        self.config = config or SamplerConfig()
        self.policy = SamplingPolicy(self.config, model)
        self.sessions = sessions
        self.store = store
        self._counts = {
            k: 0 for k in ("sampled", "queued", "dropped_full", "dropped_pending", "duplicates", "failed")
        }
        self._lock = threading.Lock()
        self._queue: queue.Queue[Sample | None] = queue.Queue(maxsize=self.config.queue_size)
        self._thread = threading.Thread(target=self._drain, name="annotation-sampler", daemon=True)
        self._thread.start()

    # -- FrameObserver (cameras may be processed on several threads: the policy runs under a lock)
    def wants_full_scan(self, camera_id: str, ts_s: float) -> bool:
        with self._lock:
            return self.policy.periodic_due(camera_id, ts_s)

    def observe(self, view: FrameView) -> None:
        with self._lock:
            sample = self.policy.decide(view)
            if sample is None:
                return
            self._counts["sampled"] += 1
        try:
            self._queue.put_nowait(sample)
        except queue.Full:
            self._count("dropped_full")

    @property
    def counts(self) -> dict[str, int]:
        with self._lock:
            return {**self._counts, "duplicates": self._counts["duplicates"] + self.policy.duplicates}

    # -- writer thread
    def _drain(self) -> None:
        while True:
            sample = self._queue.get()
            if sample is None:
                return
            try:
                self._count(self.write(sample))
            except Exception as exc:  # a failing store or database never reaches the camera
                self._count("failed")
                log.warning("camera %s: annotation sample dropped: %s", sample.camera_id, exc)

    def write(self, sample: Sample) -> str:
        """Encode, upload and register one sample; returns the count it lands in."""
        ok, buf = cv2.imencode(".jpg", sample.image, [cv2.IMWRITE_JPEG_QUALITY, self.config.jpeg_quality])
        if not ok:
            raise ValueError("the frame could not be encoded as JPEG")
        data = buf.tobytes()
        sha = sha256_hex(data)
        h, w = sample.image.shape[:2]
        key = frame_key(sample.camera_id, sample.frame_at, sha)
        with self.sessions() as session:
            if pending_count(session, sample.camera_id) >= self.config.max_pending_per_camera:
                return "dropped_pending"
            if has_frame(session, sha):
                return "duplicates"
            self.store.put(key, data, "image/jpeg", {"camera_id": sample.camera_id, "reason": sample.reason})
            add_item(
                session,
                NewItem(
                    sample.camera_id,
                    sample.frame_at,
                    sample.ts_s,
                    sample.reason,
                    sample.time_bucket,
                    sample.model_version,
                    key,
                    sha,
                    w,
                    h,
                    sample.proposals,
                ),
            )
            session.commit()
        return "queued"

    def _count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1

    def close(self, timeout_s: float = 10.0) -> None:
        """Write what is queued, then stop the writer thread."""
        self._queue.put(None)
        self._thread.join(timeout_s)
