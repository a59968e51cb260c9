"""Multi-object tracking for 2-10 fps street cameras: ByteTrack with class gating and buffered IoU.

ByteTrack (Zhang et al., 2022) associates confident detections first, then uses low-score detections only
to continue tracks that already exist, so a partly hidden stall keeps its id without low scores starting
spurious tracks. Two changes suit our cameras:

- **Class gating.** A detection can only continue a track of the same object kind: a bike never takes a
  person's id, even when they overlap.
- **Buffered IoU** (C-BIoU, Yang et al., 2023). At 2 fps a walking person moves more than a box width
  between frames, so plain IoU with the previous box is 0. Both boxes are widened by a buffer that grows as
  the frame rate drops before IoU is taken; the Kalman filter's constant-velocity prediction does the rest.

supervision >= 0.27 no longer ships ``ByteTrack`` (it moved to the separate ``trackers`` package, which
pulls in non-headless OpenCV), so the algorithm lives here on numpy + scipy's Hungarian solver.

Example:
    >>> tracker = Tracker(frame_rate=5)
    >>> tracked = tracker.update(detections, ts_s=12.4)  # doctest: +SKIP
    >>> tracked.tracker_id                                # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from vision.types import Detections


@dataclass(frozen=True)
class TrackerParams:
    """Tuning derived from the frame rate; see ``TrackerParams.for_frame_rate``.

    Attributes:
        activation_threshold: score a detection needs to start a track or take part in the first association.
        low_threshold: detections in ``[low_threshold, activation_threshold)`` only continue existing tracks.
        match_iou: minimum buffered IoU for the first association (confident detections).
        low_match_iou: minimum buffered IoU for the second association (low-score detections).
        new_match_iou: minimum buffered IoU for confirming a track seen once.
        buffer_scale: each box is widened by this fraction of its width/height on every side before IoU.
        lost_track_frames: a track unseen for more updates than this is dropped (when no ``ts_s`` is given).
        lost_track_s: a track unseen for longer than this is dropped (when ``ts_s`` is given).
        minimum_consecutive_frames: consecutive matches before a track gets an id and is reported.
        motion_noise_scale: Kalman process noise multiplier; larger steps between frames at low fps.
    """

    activation_threshold: float = 0.35
    low_threshold: float = 0.1
    match_iou: float = 0.2
    low_match_iou: float = 0.4
    new_match_iou: float = 0.2
    buffer_scale: float = 0.3
    lost_track_frames: int = 30
    lost_track_s: float = 3.0
    minimum_consecutive_frames: int = 2
    motion_noise_scale: float = 1.0

    @classmethod
    def for_frame_rate(
        cls, frame_rate: float, lost_track_s: float = 3.0, **overrides: float
    ) -> TrackerParams:
        """Parameters for ``frame_rate`` updates per second; tracks survive ``lost_track_s`` unseen.

        At 10 fps the buffer is 0.3 (C-BIoU's first-stage value); it grows as sqrt(10 / fps) up to 0.6, since
        the distance an object travels between frames grows as the rate falls.
        """
        if not frame_rate > 0:
            raise ValueError(f"tracker frame_rate must be > 0 updates per second; got {frame_rate}")
        return cls(
            buffer_scale=float(np.clip(0.3 * math.sqrt(10.0 / frame_rate), 0.15, 0.6)),
            lost_track_frames=max(1, round(lost_track_s * frame_rate)),
            lost_track_s=lost_track_s,
            motion_noise_scale=float(math.sqrt(max(1.0, 30.0 / frame_rate))),
            **overrides,
        )


# ---------------------------------------------------------------------------------------------- Kalman


class KalmanXYAH:
    """Constant-velocity Kalman filter on ``(cx, cy, aspect, h)`` boxes, batched over tracks (as in ByteTrack).

    State is ``(cx, cy, a, h, vcx, vcy, va, vh)``; noise scales with box height so it is resolution-free.
    """

    _F = np.eye(8)
    _F[:4, 4:] = np.eye(4)
    _H = np.eye(4, 8)

    def __init__(self, noise_scale: float = 1.0) -> None:
        self.w_pos = noise_scale / 20.0
        self.w_vel = noise_scale / 160.0

    def initiate(self, xyah: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n, 4) measurements -> mean (n, 8), covariance (n, 8, 8)."""
        n = len(xyah)
        mean = np.zeros((n, 8))
        mean[:, :4] = xyah
        h = xyah[:, 3]
        std = np.stack(
            [
                2 * self.w_pos * h,
                2 * self.w_pos * h,
                np.full(n, 1e-2),
                2 * self.w_pos * h,
                10 * self.w_vel * h,
                10 * self.w_vel * h,
                np.full(n, 1e-5),
                10 * self.w_vel * h,
            ],
            axis=1,
        )
        return mean, _diag(std**2)

    def predict(self, mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h = mean[:, 3]
        n = len(mean)
        std = np.stack(
            [
                self.w_pos * h,
                self.w_pos * h,
                np.full(n, 1e-2),
                self.w_pos * h,
                self.w_vel * h,
                self.w_vel * h,
                np.full(n, 1e-5),
                self.w_vel * h,
            ],
            axis=1,
        )
        mean = mean @ self._F.T
        cov = self._F @ cov @ self._F.T + _diag(std**2)
        return mean, cov

    def update(self, mean: np.ndarray, cov: np.ndarray, xyah: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h = mean[:, 3]
        n = len(mean)
        std = np.stack([self.w_pos * h, self.w_pos * h, np.full(n, 1e-1), self.w_pos * h], axis=1)
        proj_mean = mean[:, :4]
        proj_cov = cov[:, :4, :4] + _diag(std**2)
        cross = cov[:, :, :4]  # P Hᵀ, (n, 8, 4)
        # K = P Hᵀ S⁻¹ computed as a solve: S Kᵀ = (P Hᵀ)ᵀ.
        gain = np.linalg.solve(proj_cov, cross.transpose(0, 2, 1)).transpose(0, 2, 1)
        innovation = xyah - proj_mean
        mean = mean + np.einsum("nij,nj->ni", gain, innovation)
        cov = cov - gain @ proj_cov @ gain.transpose(0, 2, 1)
        return mean, cov


def _diag(values: np.ndarray) -> np.ndarray:
    out = np.zeros((*values.shape, values.shape[-1]))
    idx = np.arange(values.shape[-1])
    out[..., idx, idx] = values
    return out


def xyxy_to_xyah(xyxy: np.ndarray) -> np.ndarray:
    w = xyxy[:, 2] - xyxy[:, 0]
    h = np.maximum(xyxy[:, 3] - xyxy[:, 1], 1e-3)
    return np.stack([xyxy[:, 0] + w / 2, xyxy[:, 1] + h / 2, w / h, h], axis=1)


def xyah_to_xyxy(xyah: np.ndarray) -> np.ndarray:
    w = xyah[:, 2] * xyah[:, 3]
    h = xyah[:, 3]
    return np.stack([xyah[:, 0] - w / 2, xyah[:, 1] - h / 2, xyah[:, 0] + w / 2, xyah[:, 1] + h / 2], axis=1)


def buffered_iou(a: np.ndarray, b: np.ndarray, buffer_scale: float) -> np.ndarray:
    """(n, m) IoU of xyxy boxes after widening each by ``buffer_scale`` × its size on every side.

    Example:
        >>> buffered_iou(np.array([[0, 0, 10, 10.0]]), np.array([[12, 0, 22, 10.0]]), 0.0)
        array([[0.]])
        >>> float(buffered_iou(np.array([[0, 0, 10, 10.0]]), np.array([[12, 0, 22, 10.0]]), 0.5)[0, 0])
        0.25
    """
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    a, b = _widen(a, buffer_scale), _widen(b, buffer_scale)
    tl = np.maximum(a[:, None, :2], b[None, :, :2])
    br = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(br - tl, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def _widen(xyxy: np.ndarray, scale: float) -> np.ndarray:
    if scale == 0:
        return xyxy.astype(np.float64)
    wh = xyxy[:, 2:] - xyxy[:, :2]
    return np.concatenate([xyxy[:, :2] - scale * wh, xyxy[:, 2:] + scale * wh], axis=1).astype(np.float64)


def _match(
    similarity: np.ndarray, min_similarity: float
) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Hungarian assignment maximising similarity; pairs below ``min_similarity`` stay unmatched."""
    n, m = similarity.shape
    if n == 0 or m == 0:
        return [], list(range(n)), list(range(m))
    rows, cols = linear_sum_assignment(-similarity)
    pairs = [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if similarity[r, c] >= min_similarity]
    used_r, used_c = {r for r, _ in pairs}, {c for _, c in pairs}
    return pairs, [r for r in range(n) if r not in used_r], [c for c in range(m) if c not in used_c]


# ---------------------------------------------------------------------------------------------- tracks


@dataclass
class _Track:
    class_id: int
    mean: np.ndarray  # (8,)
    cov: np.ndarray  # (8, 8)
    hits: int = 1
    track_id: int = 0  # 0 until confirmed
    lost: bool = False
    last_update: int = 0  # update counter when last matched
    last_ts_s: float | None = None
    score: float = 0.0
    first_xy: np.ndarray = field(default_factory=lambda: np.zeros(2))  # centre at the first sighting

    @property
    def xyxy(self) -> np.ndarray:
        return xyah_to_xyxy(self.mean[None, :4])[0]


@dataclass
class Tracker:
    """ByteTrack-style tracker for one camera. Call ``update`` once per processed frame, in time order.

    Args:
        frame_rate: updates per second (the camera's detect fps), used to tune the matching and to keep
            lost tracks ``lost_track_s`` seconds.
        lost_track_s: how long an unseen track keeps its id.
        params: full control over tuning; default ``TrackerParams.for_frame_rate(frame_rate, lost_track_s)``.
    """

    frame_rate: float
    lost_track_s: float = 3.0
    params: TrackerParams | None = None
    _tracks: list[_Track] = field(default_factory=list, init=False, repr=False)
    _next_id: int = field(default=1, init=False, repr=False)
    _updates: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.params is None:
            self.params = TrackerParams.for_frame_rate(self.frame_rate, self.lost_track_s)
        self._kf = KalmanXYAH(self.params.motion_noise_scale)

    def reset(self) -> None:
        """Forget all tracks (e.g. after a stream reconnect with a jump in time). Ids keep increasing."""
        self._tracks = []

    @property
    def active_track_count(self) -> int:
        return sum(1 for t in self._tracks if not t.lost and t.track_id)

    def update(self, detections: Detections, ts_s: float | None = None) -> Detections:
        """Associate ``detections`` with tracks and return the tracked ones with ``tracker_id`` filled.

        Detections that do not (yet) belong to a confirmed track are dropped: a new object is reported
        from its ``minimum_consecutive_frames``-th consecutive sighting. Boxes, scores and ``data`` are the
        detections' own, in input order.

        Args:
            detections: this frame's detections (class ids are kinds; tracking never mixes kinds).
            ts_s: stream time of the frame; if given, lost tracks expire after ``lost_track_s`` seconds
                rather than after a number of updates (robust to skipped frames).
        """
        p = self.params
        assert p is not None
        self._updates += 1
        self._predict()

        conf = detections.confidence
        xyxy = detections.xyxy.astype(np.float64)
        cls = detections.class_id
        high = np.flatnonzero(conf >= p.activation_threshold)
        low = np.flatnonzero((conf >= p.low_threshold) & (conf < p.activation_threshold))
        matched: dict[int, _Track] = {}  # detection index -> track

        # 1. Confirmed tracks (tracked or recently lost) vs confident detections.
        pool = [t for t in self._tracks if t.track_id]
        pairs, rest_tracks, rest_high = _match(self._similarity(pool, xyxy[high], cls[high]), p.match_iou)
        for ti, di in pairs:
            matched[int(high[di])] = pool[ti]
        remaining_high = high[rest_high]

        # 2. Tracks that were visible last frame vs low-score detections (occlusion, blur).
        still = [pool[i] for i in rest_tracks if not pool[i].lost]
        pairs, rest_still, _ = _match(self._similarity(still, xyxy[low], cls[low]), p.low_match_iou)
        for ti, di in pairs:
            matched[int(low[di])] = still[ti]
        for i in rest_still:
            still[i].lost = True

        # 3. Tentative tracks (seen once, no id yet) vs the confident detections left.
        tentative = [t for t in self._tracks if not t.track_id]
        # A tentative track has no velocity yet, so it gets twice the buffer to find its second sighting.
        pairs, rest_tent, rest_high = _match(
            self._similarity(tentative, xyxy[remaining_high], cls[remaining_high], buffer_factor=2.0),
            p.new_match_iou,
        )
        for ti, di in pairs:
            matched[int(remaining_high[di])] = tentative[ti]
        dead = {id(tentative[i]) for i in rest_tent}
        new_dets = remaining_high[rest_high]

        self._correct(matched, xyxy, conf, ts_s)

        # 4. New tentative tracks from unmatched confident detections.
        if len(new_dets):
            means, covs = self._kf.initiate(xyxy_to_xyah(xyxy[new_dets]))
            for j, di in enumerate(new_dets):
                track = _Track(
                    class_id=int(cls[di]),
                    mean=means[j],
                    cov=covs[j],
                    last_update=self._updates,
                    last_ts_s=ts_s,
                    score=float(conf[di]),
                    first_xy=means[j, :2].copy(),
                )
                self._tracks.append(track)
                matched[int(di)] = track

        for track in matched.values():
            if not track.track_id and track.hits >= p.minimum_consecutive_frames:
                track.track_id = self._next_id
                self._next_id += 1

        self._tracks = [t for t in self._tracks if id(t) not in dead and not self._expired(t, ts_s)]

        keep = np.array(sorted(i for i, t in matched.items() if t.track_id), dtype=np.int64)
        ids = np.array([matched[int(i)].track_id for i in keep], dtype=np.int64)
        return detections[keep].with_(tracker_id=ids)

    # ------------------------------------------------------------------ internals

    def _predict(self) -> None:
        if not self._tracks:
            return
        mean = np.stack([t.mean for t in self._tracks])
        cov = np.stack([t.cov for t in self._tracks])
        lost = np.array([t.lost for t in self._tracks])
        mean[lost, 7] = 0.0  # as ByteTrack: a lost track's height stops changing
        mean, cov = self._kf.predict(mean, cov)
        for t, m, c in zip(self._tracks, mean, cov, strict=True):
            t.mean, t.cov = m, c

    def _similarity(
        self, tracks: list[_Track], det_xyxy: np.ndarray, det_cls: np.ndarray, buffer_factor: float = 1.0
    ) -> np.ndarray:
        if not tracks or len(det_xyxy) == 0:
            return np.zeros((len(tracks), len(det_xyxy)))
        boxes = np.stack([t.xyxy for t in tracks])
        sim = buffered_iou(boxes, det_xyxy, self.params.buffer_scale * buffer_factor)  # type: ignore[union-attr]
        same_kind = np.array([t.class_id for t in tracks])[:, None] == det_cls[None, :]
        return np.where(same_kind, sim, 0.0)

    def _correct(
        self, matched: dict[int, _Track], xyxy: np.ndarray, conf: np.ndarray, ts_s: float | None
    ) -> None:
        if not matched:
            return
        det_idx = np.fromiter(matched.keys(), dtype=np.int64)
        tracks = list(matched.values())
        mean, cov = self._kf.update(
            np.stack([t.mean for t in tracks]), np.stack([t.cov for t in tracks]), xyxy_to_xyah(xyxy[det_idx])
        )
        measured = xyxy_to_xyah(xyxy[det_idx])
        for t, m, c, di, z in zip(tracks, mean, cov, det_idx, measured, strict=True):
            if t.hits == 1:
                # Second sighting: the filter starts with zero velocity and at low fps would take several
                # frames to learn a walker's speed; take it straight from the two sightings instead.
                m[4:6] = z[:2] - t.first_xy
            t.mean, t.cov = m, c
            t.hits += 1
            t.lost = False
            t.last_update = self._updates
            t.last_ts_s = ts_s
            t.score = float(conf[di])

    def _expired(self, track: _Track, ts_s: float | None) -> bool:
        if not track.lost:
            return False
        p = self.params
        assert p is not None
        if ts_s is not None and track.last_ts_s is not None:
            return ts_s - track.last_ts_s > p.lost_track_s
        return self._updates - track.last_update > p.lost_track_frames
