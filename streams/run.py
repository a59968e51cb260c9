"""The stream workers: one worker process (``WorkerStack``) and the production worker (``urbaneye stream-worker``).

``urbaneye run`` (``app.run``) starts these workers next to the API; this module knows nothing of the API.

``urbaneye stream-worker`` = workers only. Cameras are split between machines by ``--shard i/n`` or, better,
by ``--leases`` (a dead worker's cameras move to live ones within ``settings.lease_ttl_s``);
``--processes P`` runs P worker processes on this machine (sub-shards, or each with its own leases).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from streams.annotation_sampler import AnnotationSampler
from streams.cameras_db import CameraRegistry
from streams.config_watch import CONFIG_POLL_S, ConfigWatcher
from streams.frame_strip import FRAME_STRIPS
from streams.leases import DbLeases, LeaseManager, RedisLeases, shard_of
from streams.metrics import get_metrics, serve_metrics
from streams.observers import FrameObserver
from streams.recheck import RecheckObserver, recheck_observer_for
from streams.sources import mask_url
from streams.status import BOARD, CameraHealth, write_statuses
from streams.worker import DetectorPool, StreamWorker, default_worker_id
from urbaneye.cameras_repo import INVALID_IN_FILE
from urbaneye.cases.handoff import Handoff
from urbaneye.db.session import session_factory
from urbaneye.settings import Settings, get_settings
from urbaneye.storage import get_store
from vision.config import CamerasFile, ConfigError, load_cameras, parse_cameras

log = logging.getLogger(__name__)


@dataclass
class WorkerOptions:
    cameras_path: Path
    shard: tuple[int, int] | None = None
    use_leases: bool = False
    model_path: str | None = None
    gating: bool = True
    worker_id: str | None = None
    realtime: bool = True
    #: the cameras file overwrites the database's version of its cameras at start (else: the database
    #: wins for cameras it knows; the file only seeds new ones)
    cameras_file_wins: bool = False
    #: seconds between polls for camera/zone edits in the database; 0 = do not follow edits
    config_poll_s: float = CONFIG_POLL_S
    #: file sources play this many times their native rate (demos, tests)
    speed: float = 1.0
    #: refuse to start when any camera of the file is invalid (default: start the valid ones)
    strict: bool = False


@dataclass(frozen=True)
class InvalidCamera:
    """A camera of the cameras file that failed validation: not started, shown with its error."""

    camera_id: str
    error: str


def load_cameras_lenient(path: str | Path) -> tuple[CamerasFile, tuple[InvalidCamera, ...]]:
    """The cameras file with its invalid cameras set aside, and those cameras with their errors.

    One camera's typo (a bow-tie zone, a bad source) must not stop the others. Problems of the whole
    file (unreadable, bad YAML, bad ``rules``/``model``, duplicate ids) still raise ``ConfigError``.

    Example:
        >>> cameras, invalid = load_cameras_lenient("cameras.yaml")
        >>> [(c.camera_id, c.error) for c in invalid]
        [('cam-2', "cameras.yaml: cameras[cam-2].zones[bad]: zone 'bad' polygon self-intersects at point 3; ...")]
    """
    try:
        return load_cameras(path), ()
    except ConfigError as whole:
        try:
            raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            raise whole from None
        items = raw.get("cameras") if isinstance(raw, dict) else None
        if not isinstance(items, list):
            raise whole from None
    origin = str(path)
    valid: list[object] = []
    invalid: list[InvalidCamera] = []
    for index, item in enumerate(items):
        try:
            parse_cameras({"cameras": [item]}, origin=origin)
        except ConfigError as exc:
            label = item.get("id") if isinstance(item, dict) else None
            invalid.append(InvalidCamera(str(label or f"#{index}"), str(exc).replace("\n", "; ")))
        else:
            valid.append(item)
    return parse_cameras({**raw, "cameras": valid}, origin=origin), tuple(invalid)


def refuse_invalid(invalid: tuple[InvalidCamera, ...], command: str) -> None:
    """``--strict``: raise ``ConfigError`` listing every invalid camera (the CLI exits non-zero)."""
    if invalid:
        lines = "\n".join(f"camera {c.camera_id}: {c.error}" for c in invalid)
        raise ConfigError(f"{command} --strict: {len(invalid)} invalid camera(s), nothing started:\n{lines}")


class WorkerStack:
    """Everything one worker process runs, built from settings: metrics, detectors, hand-off, leases."""

    def __init__(self, options: WorkerOptions, settings: Settings | None = None) -> None:
        self.options = options
        self.settings = settings or get_settings()
        self.cameras_file, self.invalid_cameras = load_cameras_lenient(options.cameras_path)
        if options.strict:
            refuse_invalid(self.invalid_cameras, "urbaneye stream-worker")
        for bad in self.invalid_cameras:
            log.error("camera %s not started: %s", bad.camera_id, mask_url(bad.error))
        self._invalid_health: list[CameraHealth] = []
        self.worker_id = options.worker_id or self.settings.worker_id or default_worker_id()
        self.worker = None
        self.handoff = None
        self.detectors = None
        self.recheck: RecheckObserver | None = None
        self.sampler: AnnotationSampler | None = None

    def start(self) -> WorkerStack:
        s = self.settings
        sessions = session_factory(s.db_url)
        registry = CameraRegistry(sessions)
        watcher, problems = self._cameras_from_db(registry)
        self._show_invalid(sessions, problems)
        metrics = get_metrics()
        serve_metrics(s.metrics_port)
        self.detectors = DetectorPool(
            self.cameras_file, model_path=self.options.model_path, session_factory=sessions
        )
        self.handoff = Handoff(s.spool_dir, min_evidence_gap_s=self.cameras_file.rules.evidence_min_gap_s)
        self.handoff.start_relay()
        shard = self.options.shard
        accept = (lambda cid: shard_of(cid, shard[1]) == shard[0]) if shard is not None else None
        camera_ids = [
            c.id for c in self.cameras_file.cameras if c.enabled and (accept is None or accept(c.id))
        ]
        leases = None
        if self.options.use_leases:
            leases = LeaseManager(self._lease_backend(sessions), self.worker_id, camera_ids, s.lease_ttl_s)
        self.worker = StreamWorker(
            self.cameras_file,
            self.detectors,
            self.handoff,
            worker_id=self.worker_id,
            accept=accept,
            leases=leases,
            realtime=self.options.realtime,
            speed=self.options.speed,
            gating=self.options.gating,
            session_factory=sessions,
            metrics=metrics,
            snapshot_store=self._snapshot_store(),
            config_watcher=watcher,
            config_poll_s=self.options.config_poll_s or CONFIG_POLL_S,
            config_problems=problems,
            memory_refresh_s=s.memory_refresh_s,
            observers=self._observers(sessions),
        ).start()
        return self

    def _observers(self, sessions: Any) -> list[FrameObserver]:
        """The frame observers of this worker's cameras (``streams.observers``); each feature that watches
        the cameras' pictures without being a rule adds its observer here."""
        observers: list[FrameObserver] = []
        observers.append(FRAME_STRIPS)  # frames across each dwell for the case's frame strip
        self.sampler = AnnotationSampler(sessions, get_store(self.settings), self.cameras_file.model)
        get_metrics().watch_sampler(self.sampler)
        observers.append(self.sampler)  # real frames for the annotation queue (issue 14)
        self.recheck = recheck_observer_for(self)  # camera re-checks of cases (issue 19)
        observers.append(self.recheck)
        return observers

    def _cameras_from_db(self, registry):  # noqa: ANN001, ANN202
        """Seed the database from the file, then run the database's cameras (``self.cameras_file``).

        Returns the watcher that follows later edits (None when ``config_poll_s`` is 0) and the problems
        of each camera's rows (skipped zones). If the database cannot be read, the file runs and the
        watcher seeds the database once it can.
        """
        wins = self.options.cameras_file_wins
        follow = self.options.config_poll_s > 0
        try:
            report = registry.seed(self.cameras_file, file_wins=wins)
            versions, loaded = registry.load_all()
        except Exception as exc:  # the cameras still run, as the file says
            log.warning(
                "cameras not read from the database (%s); running the cameras file until it can be read",
                mask_url(str(exc)),
            )
            watcher = ConfigWatcher(registry, seed_from=self.cameras_file, file_wins=wins) if follow else None
            return watcher, {}
        log.info(
            "cameras in the database: %d new from the file, %d %s, %d in all",
            len(report.inserted),
            len(report.overwritten) if wins else len(report.kept),
            "overwritten by the file (--cameras-file-wins)" if wins else "as the database has them",
            len(loaded),
        )
        cameras, problems = [], {}
        for cid, camera in sorted(loaded.items()):
            for problem in camera.problems:
                log.error("%s", problem)
            problems[cid] = camera.problems
            if camera.config is not None:
                cameras.append(camera.config)
            else:
                # a camera the database holds in an invalid state: run the file's version if it has one
                fallback = next((c for c in self.cameras_file.cameras if c.id == cid), None)
                if fallback is not None:
                    log.error("camera %s: running the cameras file's version instead", cid)
                    cameras.append(fallback)
        self.cameras_file = self.cameras_file.model_copy(update={"cameras": cameras})
        return (ConfigWatcher(registry, versions) if follow else None), problems

    def _show_invalid(self, sessions, problems: dict[str, tuple[str, ...]]) -> None:  # noqa: ANN001
        """Put each invalid camera of the file where operators look: its status (board, ``camera_status``).

        A camera the database already knows runs as the database has it; the file's error joins its
        status. Any other invalid camera is reported offline with the error, until the file is fixed.
        """
        running = {c.id for c in self.cameras_file.cameras}
        idle: list[CameraHealth] = []
        for bad in self.invalid_cameras:
            message = f"{INVALID_IN_FILE}: {bad.error}"
            if bad.camera_id in running:
                problems[bad.camera_id] = (
                    *problems.get(bad.camera_id, ()),
                    f"{message}; running the database's version",
                )
                continue
            health = CameraHealth(bad.camera_id, 1.0, worker_id=self.worker_id)
            health.stopped(message)
            idle.append(health)
        for health in idle:
            BOARD.register(health)
        self._invalid_health = idle
        if idle:
            try:
                write_statuses(sessions, [h.snapshot() for h in idle])
            except Exception as exc:  # status is for display: never keep the valid cameras from starting
                log.warning("status of the invalid cameras not written: %s", mask_url(str(exc)))

    def _snapshot_store(self):  # noqa: ANN202
        try:
            store = get_store(self.settings)
            store.ensure_ready()
            return store
        except Exception as exc:  # snapshots are a convenience: never keep cameras from starting
            log.warning("camera snapshots off: evidence store unavailable (%s)", mask_url(str(exc)))
            return None

    def _lease_backend(self, sessions):  # noqa: ANN001, ANN202
        if self.settings.redis_url:
            log.info("camera leases in Redis %s", mask_url(self.settings.redis_url))
            return RedisLeases(self.settings.redis_url)
        log.info("camera leases in the database")
        return DbLeases(sessions)

    def run_until(self, stop: threading.Event) -> None:
        assert self.worker is not None
        self.worker.run_until(stop)

    def stop(self) -> None:
        for health in self._invalid_health:
            BOARD.unregister(health.camera_id)
        if self.worker is not None:
            self.worker.stop()
        if self.recheck is not None:
            self.recheck.close()
        if self.sampler is not None:
            self.sampler.close()  # writes the samples still queued, then ends its thread
        if self.handoff is not None:
            self.handoff.close()
        if self.detectors is not None:
            self.detectors.stop()


def install_stop_signals(stop: threading.Event) -> None:
    """SIGTERM/SIGINT set ``stop``: the worker then finishes its in-flight frames and flushes events."""

    def handler(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping gracefully", signum)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def serve_worker(options: WorkerOptions) -> int:
    """Run one worker process until SIGTERM/SIGINT."""
    stop = threading.Event()
    install_stop_signals(stop)
    stack = WorkerStack(options).start()
    try:
        stack.run_until(stop)
    finally:
        stack.stop()
    return 0


def child_argv(options: WorkerOptions, index: int, processes: int) -> list[str]:
    """Command line of worker process ``index`` of ``processes`` on this machine."""
    argv = [sys.executable, "-m", "urbaneye.cli", "stream-worker", "--cameras", str(options.cameras_path)]
    if options.use_leases:
        argv.append("--leases")
    else:
        i, n = options.shard or (0, 1)
        # shard_of(c, n*P) mod n == shard_of(c, n): sub-shard i + j*n of n*P lies inside machine shard i.
        argv += ["--shard", f"{i + index * n}/{n * processes}"]
    if options.model_path:
        argv += ["--model", options.model_path]
    if not options.gating:
        argv.append("--no-motion-gating")
    if options.cameras_file_wins:
        argv.append("--cameras-file-wins")
    if options.strict:
        argv.append("--strict")
    return argv


def supervise_processes(options: WorkerOptions, processes: int, settings: Settings | None = None) -> int:
    """Run ``processes`` worker processes; restart any that dies; forward SIGTERM/SIGINT to all."""
    settings = settings or get_settings()
    stop = threading.Event()
    install_stop_signals(stop)
    base_id = options.worker_id or settings.worker_id or f"{os.uname().nodename}:{os.getpid()}"

    def spawn(j: int) -> subprocess.Popen:
        env = dict(os.environ)
        env["URBANEYE_WORKER_ID"] = f"{base_id}/{j}"
        if settings.metrics_port:
            env["URBANEYE_METRICS_PORT"] = str(settings.metrics_port + j)
        return subprocess.Popen(child_argv(options, j, processes), env=env)

    children = {j: spawn(j) for j in range(processes)}
    log.info("started %d worker processes: %s", processes, [c.pid for c in children.values()])
    while not stop.wait(1.0):
        for j, child in list(children.items()):
            code = child.poll()
            if code is not None:
                log.error("worker process %d (pid %d) exited with %d; restarting", j, child.pid, code)
                time.sleep(1.0)
                children[j] = spawn(j)
    for child in children.values():
        child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 40
    for child in children.values():
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
    return 0
