"""Hot reload of the active (and shadow) model of a camera group, without restarting or dropping frames.

A ``ModelWatcher`` thread polls the ``active_models`` row of its camera group every ``poll_s``. When the
version changes it fetches the ONNX (``urbaneye.registry.fetch_onnx`` checks the sha256), builds an
``OnnxDetector`` and runs one warm-up inference, all on the watcher thread while the old detector keeps
serving; then it swaps one reference. The stream loop reads that reference once per frame:

    watcher = ModelWatcher(camera.group, poll_s=10, model_config=cameras.model).start()
    while running:
        frame = ...
        detector, model_version = watcher.current()        # one snapshot per frame (or batch)
        detections = detector.detect(frame)
        ... context["model_version"] = model_version        # every case records the model that found it
        shadow = watcher.shadow(camera.id)                  # None unless a shadow runs on this camera
        if shadow is not None:
            shadow_detector, shadow_version = shadow
            # run the same pipeline on a separate CameraPipeline; for each "opened" event call
            # urbaneye.registry.record_shadow_case(session, shadow_version, camera.id, kind, violation_id)
    watcher.stop()

Because the swap is a single attribute assignment and a frame uses the pair it read at its start, a frame
is processed entirely by one model and no frame waits for a load. If a new version fails to load (missing
file, hash mismatch, not a detector) the old model keeps running, the error is logged and kept in
``status()``, and the load is retried on later polls.

A model imported with a class map (``urbaneye models import --class-map coco``) carries the map in the
registry; the watcher loads it with that map under the cameras file's ``model`` settings, whose own
``class_map`` entries win label by label.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from urbaneye.db.models import ActiveModel, ModelVersion
from urbaneye.db.session import session_factory as make_session_factory
from urbaneye.registry import class_map_of, fetch_onnx
from urbaneye.settings import Settings, get_settings
from vision.config import ModelConfig
from vision.detector import OnnxDetector

log = logging.getLogger(__name__)

#: Builds a detector from a verified local ONNX path; ``vision.detector.OnnxDetector`` by default.
Loader = Callable[[Path, ModelConfig | None], Any]


def _default_loader(path: Path, config: ModelConfig | None) -> Any:
    return OnnxDetector(path, config)


@dataclass(frozen=True)
class Loaded:
    """A ready detector and the registry version it came from."""

    detector: Any
    version: str
    sha256: str


class ModelWatcher:
    """Keeps the active (and shadow) detector of ``group`` current.

    Args:
        group: camera group (``CameraConfig.group``).
        poll_s: seconds between polls of the ``active_models`` row.
        model_config: class map / thresholds passed to every detector (``CamerasFile.model``).
        fallback_path: ONNX used while the group has no active model (default: ``settings.model_path``).
        session_factory: database sessions (default: the configured database).
        loader: builds a detector from a path (tests and benchmarks may pass their own).
    """

    def __init__(
        self,
        group: str = "default",
        poll_s: float = 10.0,
        *,
        model_config: ModelConfig | None = None,
        fallback_path: str | Path | None = None,
        session_factory: sessionmaker[Session] | None = None,
        settings: Settings | None = None,
        loader: Loader | None = None,
    ) -> None:
        if poll_s <= 0:
            raise ValueError(f"ModelWatcher poll_s must be > 0 seconds, got {poll_s}")
        self.group = group
        self.poll_s = float(poll_s)
        self.model_config = model_config
        self.settings = settings or get_settings()
        self.fallback_path = Path(
            fallback_path or self.model_config and self.model_config.path or self.settings.model_path
        )
        self._sessions = session_factory or make_session_factory()
        self._loader = loader or _default_loader
        self._active: Loaded | None = None
        self._shadow: Loaded | None = None
        self._shadow_cameras: frozenset[str] = frozenset()
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self.reloads = 0
        self.failures = 0
        self.last_error = ""
        self.last_poll_at = 0.0

    # ------------------------------------------------------------------------------------ for the loop

    def current(self) -> tuple[Any, str]:
        """``(detector, model_version)`` to use for the next frame. Never blocks."""
        loaded = self._active
        if loaded is None:
            raise RuntimeError("ModelWatcher.current() before start(); call watcher.start() first")
        return loaded.detector, loaded.version

    def shadow(self, camera_id: str | None = None) -> tuple[Any, str] | None:
        """``(detector, version)`` of the shadow model if one runs on ``camera_id`` (any camera if None)."""
        loaded = self._shadow
        if loaded is None:
            return None
        if camera_id is not None and camera_id not in self._shadow_cameras:
            return None
        return loaded.detector, loaded.version

    def status(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "version": self._active.version if self._active else None,
            "shadow_version": self._shadow.version if self._shadow else None,
            "shadow_cameras": sorted(self._shadow_cameras),
            "reloads": self.reloads,
            "failures": self.failures,
            "last_error": self.last_error,
        }

    # ------------------------------------------------------------------------------------- lifecycle

    def start(self) -> ModelWatcher:
        """Load the current model synchronously (before the first frame), then poll in the background."""
        self.poll_once()
        if self._active is None:
            raise RuntimeError(f"no model for camera group {self.group!r}: {self.last_error}")
        self._thread = threading.Thread(target=self._run, name=f"model-watcher-{self.group}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def __enter__(self) -> ModelWatcher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_for_version(self, version: str, timeout_s: float) -> bool:
        """Block until the active version is ``version`` (tests, deploy scripts). True if it happened."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while self._active is None or self._active.version != version:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(left)
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.poll_once()
            except Exception as exc:  # a DB outage must not kill the watcher; the old model keeps serving
                self.failures += 1
                self.last_error = f"poll failed: {exc}"
                log.warning("model watcher %s: %s", self.group, self.last_error)

    # ------------------------------------------------------------------------------------------ work

    def poll_once(self) -> bool:
        """Check the registry once and swap in changed models. True if anything was swapped."""
        self.last_poll_at = time.monotonic()
        with self._sessions() as session:
            row = session.get(ActiveModel, self.group)
            active_mv = session.get(ModelVersion, row.version) if row else None
            shadow_mv = session.get(ModelVersion, row.shadow_version) if row and row.shadow_version else None
            shadow_cams = frozenset(row.shadow_cameras or []) if row else frozenset()
            session.expunge_all()
        swapped = False
        if active_mv is None:
            if self._active is None:
                swapped |= self._swap_active(self._load_path(self.fallback_path, None))
        elif self._active is None or self._active.version != active_mv.version:
            swapped |= self._swap_active(self._load_version(active_mv))

        if shadow_mv is None:
            if self._shadow is not None:
                self._shadow = None
                swapped = True
        elif self._shadow is None or self._shadow.version != shadow_mv.version:
            loaded = self._load_version(shadow_mv)
            if loaded is not None:
                self._shadow = loaded
                swapped = True
        self._shadow_cameras = shadow_cams
        return swapped

    def _swap_active(self, loaded: Loaded | None) -> bool:
        if loaded is None:
            return False
        old = self._active
        with self._changed:
            self._active = loaded  # the swap: one reference; frames in flight keep the detector they read
            self._changed.notify_all()
        if old is not None:
            self.reloads += 1
            log.info("camera group %s: model %s -> %s (hot reload)", self.group, old.version, loaded.version)
        return True

    def _load_version(self, mv: ModelVersion) -> Loaded | None:
        try:
            path = fetch_onnx(mv.onnx_uri, mv.sha256, self.settings)
        except Exception as exc:
            self._fail(f"model {mv.version}: {exc}")
            return None
        return self._load_path(path, mv.version, mv.sha256, self._config_for(mv))

    def _config_for(self, mv: ModelVersion) -> ModelConfig | None:
        """The cameras file's model settings with the version's own class map beneath its ``class_map``."""
        own = class_map_of(mv)
        if not own:
            return self.model_config
        base = self.model_config or ModelConfig()
        return base.model_copy(update={"class_map": {**own, **base.class_map}})

    def _load_path(
        self,
        path: Path,
        version: str | None,
        sha256: str | None = None,
        config: ModelConfig | None = None,
    ) -> Loaded | None:
        try:
            detector = self._loader(Path(path), config or self.model_config)
            # The detector hashes what it actually loaded: closes the gap between fetch and load.
            got = getattr(detector, "sha256", None)
            if sha256 and got and got != sha256:
                raise ValueError(f"loaded bytes hash {got[:12]}…, registry says {sha256[:12]}…")
            self._warm_up(detector)
        except Exception as exc:
            self._fail(f"model {version or path}: {exc}")
            return None
        return Loaded(detector, version or getattr(detector, "version", Path(path).stem), sha256 or got or "")

    @staticmethod
    def _warm_up(detector: Any) -> None:
        """One inference off the hot path, so the first frame after the swap is not slow."""
        h, w = getattr(detector, "imgsz", (64, 64))
        detector.detect(np.zeros((int(h), int(w), 3), np.uint8))

    def _fail(self, message: str) -> None:
        self.failures += 1
        self.last_error = message
        log.error("camera group %s: keeping the current model; %s", self.group, message)
