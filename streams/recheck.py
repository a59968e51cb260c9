"""Camera re-check (智能核查) in the stream worker: look at a case's place again and say what is there.

``RecheckObserver`` is a frame observer (``streams.observers``). Its own thread polls the database for
re-check requests of the cameras this worker holds (``urbaneye.rechecks.claim_rechecks``; with leases only
cameras whose lease is valid), writes the scheduled ones (``request_due``), and finishes each re-check:
renders and stores the after-photo, records the result and applies the camera group's policy
(``urbaneye.rechecks.finish_recheck``). On the processing threads it only asks for full scans of a camera
under re-check (``wants_full_scan``: no motion gating for the window) and tallies each detected frame
(``observe``): quick arithmetic and, now and then, a copy of the frame for the photo.

Judgement of one window (``judge_window``):

* a frame is **unusable** when it is too dark (mean luma < ``DARK_LUMA``: night without IR) or the view is
  blocked (luma standard deviation < ``BLOCKED_STD``: lens covered, picture frozen to one colour);
* in a usable frame the violation is **present** when an object of the case kind's classes is *at the
  place*: its box overlaps the case's box (scaled to this frame) with IoU >= ``PLACE_IOU`` or lies mostly
  inside it (>= ``PLACE_INSIDE`` of its own area);
* ``inconclusive`` when no frame came within the window plus a grace (camera offline) or fewer than
  ``MIN_USABLE_FRACTION`` of the frames were usable; else ``still_present`` when the violation is present
  in the majority of usable frames, ``cleared`` otherwise.
"""

from __future__ import annotations

import datetime as dt
import logging
import statistics
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import cv2
import numpy as np

from streams.observers import FrameView
from urbaneye.db.rechecks import RecheckResult
from urbaneye.db.session import session_scope
from urbaneye.rechecks import (
    AfterPhoto,
    RecheckOutcome,
    RecheckTarget,
    after_photo_key,
    claim_rechecks,
    finish_recheck,
    policy_for,
    request_due,
    should_run,
    skip_recheck,
)
from urbaneye.storage import EvidenceStore, get_store
from vision.config import CameraConfig, CamerasFile, RecheckConfig
from vision.evidence import render_evidence
from vision.geometry import box_iou, polygon_px, scale_box
from vision.kinds import Catalogue, kind_catalogue
from vision.types import OBJECT_KINDS, Detections, Escalation, EventKind, ObjectKind, ViolationEvent

log = logging.getLogger(__name__)

DARK_LUMA = 28.0
BLOCKED_STD = 6.0
PLACE_IOU = 0.3
PLACE_INSIDE = 0.5
MIN_USABLE_FRACTION = 0.5
#: Wall seconds past the window a re-check waits for frames before it calls the camera offline.
OFFLINE_GRACE_S = 10.0


def presence_classes(kind: str, catalogue: Catalogue | None = None) -> frozenset[int]:
    """Class ids whose object at the place means the violation is still there: the kind's classes
    (``vision.kinds``: built-ins and the cameras file's ``violations:``) but people — a passer-by at a
    cleared place is no stall. A kind the catalogue does not know: every class but people.

    Example:
        >>> sorted(str(OBJECT_KINDS[i]) for i in presence_classes("bike_misparking"))
        ['bicycle', 'e_bike']
    """
    spec = (catalogue or kind_catalogue(CamerasFile())).get(kind)
    names = set(spec.classes) if spec is not None else {str(k) for k in OBJECT_KINDS}
    return frozenset(i for i, k in enumerate(OBJECT_KINDS) if str(k) in names and k != ObjectKind.PERSON)


def at_place(boxes_xyxy: np.ndarray, place_xyxy: tuple[float, float, float, float]) -> np.ndarray:
    """(n, 4) boxes -> (n,) bool: which boxes are at the place (IoU, or mostly inside the place box).

    Example:
        >>> at_place(np.array([[0, 0, 10, 10], [50, 50, 60, 60.0]]), (0, 0, 20, 20)).tolist()
        [True, False]
    """
    out = np.zeros(len(boxes_xyxy), bool)
    place_area = max((place_xyxy[2] - place_xyxy[0]) * (place_xyxy[3] - place_xyxy[1]), 1e-6)
    for i, box in enumerate(boxes_xyxy):
        iou = box_iou(box, place_xyxy)
        area = max(float((box[2] - box[0]) * (box[3] - box[1])), 1e-6)
        # intersection from the IoU: inter = iou * (area + place_area) / (1 + iou)
        inside = iou * (area + place_area) / (1.0 + iou) / area
        out[i] = iou >= PLACE_IOU or inside >= PLACE_INSIDE
    return out


@dataclass
class WindowTally:
    """What the frames of one re-check window showed (filled on the processing thread)."""

    frames: int = 0
    dark: int = 0
    blocked: int = 0
    present: int = 0
    counts: list[int] = field(default_factory=list)  # objects at the place per usable frame
    start_ts_s: float | None = None
    last_ts_s: float = 0.0
    photo: np.ndarray | None = None  # BGR copy of the frame for the after-photo
    photo_at: dt.datetime | None = None
    photo_dets: Detections = field(default_factory=Detections.empty)
    photo_box: tuple[float, float, float, float] | None = None
    photo_score: float = -1.0


def judge_window(tally: WindowTally, window_s: float) -> RecheckOutcome:
    """The result of a window (rules in the module docstring)."""
    usable = tally.frames - tally.dark - tally.blocked
    wh = (int(tally.photo.shape[1]), int(tally.photo.shape[0])) if tally.photo is not None else None
    reason = ""
    if tally.frames == 0:
        result, reason = RecheckResult.INCONCLUSIVE, "摄像机离线：核查时段内没有画面"
    elif usable < max(1, MIN_USABLE_FRACTION * tally.frames):
        result = RecheckResult.INCONCLUSIVE
        reason = "画面过暗（夜间无补光）" if tally.dark >= tally.blocked else "画面被遮挡"
    elif tally.present * 2 > usable:
        result = RecheckResult.STILL_PRESENT
    else:
        result = RecheckResult.CLEARED
    return RecheckOutcome(
        result=result,
        reason=reason,
        window_s=window_s,
        frames=tally.frames,
        usable_frames=max(usable, 0),
        present_frames=tally.present,
        objects_after=int(statistics.median(tally.counts)) if tally.counts else 0,
        present_bbox_xyxy=tally.photo_box if result == RecheckResult.STILL_PRESENT else None,
        frame_wh=wh,
        frame_at=tally.photo_at,
    )


class PlaceWatch:
    """One re-check window of one case: tallies the frames it is given, then judges them.

    Example:
        >>> watch = PlaceWatch(target, window_s=60)  # doctest: +SKIP
        >>> watch.add(view)  # each detected frame of the camera, until ``watch.done``  # doctest: +SKIP
        >>> watch.outcome().result  # doctest: +SKIP
        <RecheckResult.CLEARED: 'cleared'>
    """

    def __init__(self, target: RecheckTarget, window_s: float, catalogue: Catalogue | None = None) -> None:
        self.target = target
        self.window_s = window_s
        self.classes = presence_classes(target.kind, catalogue)
        self.tally = WindowTally()
        self.done = False

    def add(self, view: FrameView) -> None:
        """Count one detected frame (carried frames are ignored: they say nothing new)."""
        if self.done or not view.detected:
            return
        gray = cv2.cvtColor(view.frame.image, cv2.COLOR_BGR2GRAY)
        luma, spread = float(gray.mean()), float(gray.std())
        t = self.tally
        if t.start_ts_s is None:
            t.start_ts_s = view.ts_s
        t.frames += 1
        t.last_ts_s = view.ts_s
        if luma < DARK_LUMA:
            t.dark += 1
        elif spread < BLOCKED_STD:
            t.blocked += 1
        else:
            self._add_usable(view)
        if view.ts_s - t.start_ts_s >= self.window_s:
            self.done = True

    def place_in(self, frame_wh: tuple[int, int]) -> tuple[float, float, float, float]:
        """The case's box in a ``frame_wh`` frame (the case was seen at ``target.frame_wh``)."""
        (w, h), (tw, th) = frame_wh, self.target.frame_wh
        return scale_box(self.target.bbox_xyxy, w / tw, h / th) if tw and th else self.target.bbox_xyxy

    def _add_usable(self, view: FrameView) -> None:
        t = self.tally
        dets = view.detections
        relevant = np.isin(dets.class_id, list(self.classes)) if len(dets) else np.zeros(0, bool)
        here = at_place(dets.xyxy, self.place_in(view.frame.wh)) & relevant
        t.counts.append(int(here.sum()))
        if here.any():
            t.present += 1
            best = int(np.argmax(np.where(here, dets.confidence, -1.0)))
            score = float(dets.confidence[best])
            if score > t.photo_score + 0.05 or t.photo_box is None:
                _keep_photo(t, view, dets[relevant], tuple(float(v) for v in dets.xyxy[best]), score)
        elif t.photo_box is None:
            # the newest clear frame, until (if ever) the object shows up
            _keep_photo(t, view, dets[relevant], None, -1.0)

    def outcome(self) -> RecheckOutcome:
        return judge_window(self.tally, self.window_s)


def _keep_photo(t: WindowTally, view: FrameView, dets: Detections, box, score: float) -> None:  # noqa: ANN001
    t.photo = view.frame.image.copy()
    t.photo_at = view.frame.frame_time
    t.photo_dets = dets
    t.photo_box = box
    t.photo_score = score


@dataclass
class _Task:
    watch: PlaceWatch
    policy: RecheckConfig
    deadline_mono: float  # wall deadline: no frames by then = offline

    @property
    def target(self) -> RecheckTarget:
        return self.watch.target


class RecheckObserver:
    """Frame observer + poll thread of one worker's camera re-checks (see the module docstring).

    Args:
        sessions: database session factory of the worker (its ``kw["bind"]`` gives the URL).
        db_url: the database the requests live in.
        worker_id: recorded on claimed requests.
        policies: the cameras file's ``recheck:`` (group -> ``RecheckConfig``).
        cameras: the cameras this worker holds now (id -> config); called on the poll thread.
        store: where after-photos go (the evidence store); called when a photo is stored, so a store that
            is down at start is used once it is up (until then finished re-checks wait and are retried).
        poll_s: seconds between polls for new requests and finished windows.
        schedule_s: seconds between looks for due scheduled re-checks.
        catalogue: the violation kinds (``vision.kinds.kind_catalogue``) whose classes are looked for.
    """

    def __init__(
        self,
        db_url: str,
        worker_id: str,
        policies: Mapping[str, RecheckConfig],
        cameras: Callable[[], Mapping[str, CameraConfig]],
        store: Callable[[], EvidenceStore],
        *,
        poll_s: float = 2.0,
        schedule_s: float = 60.0,
        catalogue: Catalogue | None = None,
    ) -> None:
        self.catalogue = catalogue
        self.db_url = db_url
        self.worker_id = worker_id
        self.policies = dict(policies)
        self.cameras = cameras
        self.store = store
        self.poll_s = poll_s
        self.schedule_s = schedule_s
        self._tasks: dict[str, _Task] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_schedule_mono = 0.0
        self.finished = 0

    # ----------------------------------------------------------------------- processing threads
    def wants_full_scan(self, camera_id: str, ts_s: float) -> bool:
        with self._lock:
            return any(t.target.camera_id == camera_id and not t.watch.done for t in self._tasks.values())

    def observe(self, view: FrameView) -> None:
        with self._lock:  # the poll thread judges a window under the same lock
            for task in self._tasks.values():
                if task.target.camera_id == view.camera.id:
                    task.watch.add(view)

    # ------------------------------------------------------------------------------ poll thread
    def start(self) -> RecheckObserver:
        self._thread = threading.Thread(target=self._run, name="recheck", daemon=True)
        self._thread.start()
        return self

    def close(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.poll_once()
            except Exception as exc:  # database down: the requests wait; the cameras never notice
                log.warning("camera re-check round failed: %s", exc)

    def poll_once(self) -> None:
        """One round: finish windows that ended, write scheduled requests, claim new ones."""
        now = time.monotonic()
        with self._lock:
            for task in self._tasks.values():
                if not task.watch.done and now >= task.deadline_mono:
                    task.watch.done = True  # no (or too few) frames in time: judged on what came
            finished = [t for t in self._tasks.values() if t.watch.done]
        for task in finished:
            self._finish(task)
            with self._lock:
                self._tasks.pop(task.target.recheck_id, None)
        cameras = dict(self.cameras())
        if now >= self._next_schedule_mono:
            self._next_schedule_mono = now + self.schedule_s
            with session_scope(self.db_url) as session:
                request_due(session, cameras, lambda cid: self._policy(cameras.get(cid)))
        self._claim(cameras, now)

    def _policy(self, camera: CameraConfig | None) -> RecheckConfig:
        return policy_for(self.policies, camera.group if camera is not None else "default")

    def _claim(self, cameras: Mapping[str, CameraConfig], now: float) -> None:
        with session_scope(self.db_url) as session:
            targets = claim_rechecks(
                session, cameras, self.worker_id, lambda cid: self._policy(cameras.get(cid)).window_s
            )
            for target in targets:
                policy = self._policy(cameras.get(target.camera_id))
                why_not = should_run(target, policy)
                if why_not:
                    skip_recheck(session, target.recheck_id, why_not)
                    continue
                task = _Task(
                    PlaceWatch(target, policy.window_s, self.catalogue),
                    policy,
                    now + policy.window_s + OFFLINE_GRACE_S,
                )
                with self._lock:
                    self._tasks[target.recheck_id] = task
                log.info(
                    "camera %s: re-checking case %s for %.0f s (%s)",
                    target.camera_id,
                    target.case_id,
                    policy.window_s,
                    target.trigger,
                )

    def _finish(self, task: _Task) -> None:
        with self._lock:
            outcome = task.watch.outcome()
        photo = self._store_photo(task, outcome)
        with session_scope(self.db_url) as session:
            finish_recheck(
                session,
                task.target.recheck_id,
                outcome,
                photo,
                task.policy,
                f"system:recheck:{self.worker_id}"[:64],
            )
        self.finished += 1
        log.info(
            "camera %s: case %s re-checked: %s %s",
            task.target.camera_id,
            task.target.case_id,
            outcome.result.value,
            outcome.reason,
        )

    def _store_photo(self, task: _Task, outcome: RecheckOutcome) -> AfterPhoto | None:
        """Render and store the after-photo (clean + annotated); None without a frame or a store."""
        t, target = task.watch.tally, task.target
        if t.photo is None:
            return None
        camera = self.cameras().get(target.camera_id)
        images = render_evidence(
            t.photo,
            self._event(task.watch, outcome),
            t.photo_dets,
            self._zone_px(camera, target.zone_id, t.photo),
            camera.name if camera is not None else target.camera_id,
            _local_time(t.photo_at, camera),
        )
        day = (t.photo_at or dt.datetime.now(dt.UTC)).date()
        keys = {
            v: after_photo_key(target.camera_id, target.case_id, target.recheck_id, day, v)
            for v in ("clean", "annotated")
        }
        meta = {"case_id": target.case_id, "recheck_id": target.recheck_id}
        store = self.store()
        clean_sha = store.put(keys["clean"], images.clean_jpg, "image/jpeg", meta)
        annotated_sha = store.put(keys["annotated"], images.annotated_jpg, "image/jpeg", meta)
        return AfterPhoto(keys["clean"], clean_sha, keys["annotated"], annotated_sha)

    @staticmethod
    def _event(watch: PlaceWatch, outcome: RecheckOutcome) -> ViolationEvent:
        """The case as the annotated after-photo draws it: the object's box when present, else the place."""
        t, target = watch.tally, watch.target
        place = watch.place_in((t.photo.shape[1], t.photo.shape[0]))
        return ViolationEvent(
            event=EventKind.UPDATED,
            violation_id=f"recheck:{target.recheck_id}",
            camera_id=target.camera_id,
            zone_id=target.zone_id,
            kind=target.kind,
            ts_s=t.last_ts_s,
            bbox_xyxy=outcome.present_bbox_xyxy or place,
            score=max(t.photo_score, 0.0),
            gbt_code=target.gbt_code,
            escalation=Escalation(target.escalation),
        )

    @staticmethod
    def _zone_px(camera: CameraConfig | None, zone_id: str, image: np.ndarray) -> np.ndarray | None:
        zone = next((z for z in camera.zones if z.id == zone_id), None) if camera is not None else None
        return polygon_px(zone.polygon, (image.shape[1], image.shape[0])) if zone is not None else None


def _local_time(at: dt.datetime | None, camera: CameraConfig | None) -> dt.datetime:
    at = at or dt.datetime.now(dt.UTC)
    return at.astimezone(ZoneInfo(camera.timezone)) if camera is not None else at


def owned_cameras(worker) -> dict[str, CameraConfig]:  # noqa: ANN001 - streams.worker.StreamWorker
    """The cameras ``worker`` holds now: its cameras, with leases only those whose lease is valid."""
    if worker is None:
        return {}
    cameras = dict(worker.cameras)
    if worker.leases is not None:
        cameras = {cid: c for cid, c in cameras.items() if worker.leases.valid(cid)}
    return cameras


def recheck_observer_for(stack) -> RecheckObserver:  # noqa: ANN001 - streams.run.WorkerStack
    """The re-check observer of a ``WorkerStack`` (started; ``stack.stop`` closes it)."""
    return RecheckObserver(
        stack.settings.db_url,
        stack.worker_id,
        stack.cameras_file.recheck,
        lambda: owned_cameras(stack.worker),
        lambda: get_store(stack.settings),
        catalogue=kind_catalogue(stack.cameras_file),
    ).start()
