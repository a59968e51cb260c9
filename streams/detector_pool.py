"""The detectors of one stream worker: one per camera group, shared by all the group's cameras.

Which precision runs follows ``model.precision`` of the cameras file (``urbaneye.registry_precision``):
``auto`` runs the int8 variant that passed its gate when the detector runs on the CPU, ``int8`` runs it
wherever it runs, ``fp32`` never does. Without a registry the same rule applies to the shipped files: the
configured fp32 ONNX's ``.int8.onnx`` sibling whose card says it passed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from streams.camera import DetectorSource
from urbaneye.db.models import ModelVersion
from urbaneye.hot_reload import Loaded, ModelWatcher
from urbaneye.registry_precision import resolve_precision, shipped_int8_passed
from urbaneye.settings import get_settings
from vision.config import CamerasFile
from vision.detector import PREFERRED_PROVIDERS, OnnxDetector

log = logging.getLogger(__name__)


def runs_on_cpu() -> bool:
    """True when ``OnnxDetector`` would pick the CPU provider here (no accelerator provider installed)."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    return next((p for p in PREFERRED_PROVIDERS if p in available), "CPUExecutionProvider") == (
        "CPUExecutionProvider"
    )


def wants_int8(precision: str, on_cpu: bool) -> bool:
    """Whether ``model.precision`` asks for the int8 variant on this machine (``auto``: only on the CPU)."""
    return precision == "int8" or (precision == "auto" and on_cpu)


def static_model_path(configured: str, precision: str, on_cpu: bool) -> str:
    """The file to run for a configured fp32 ONNX without a registry: its passing int8 sibling when
    ``precision`` wants int8, else the file itself (an explicitly int8 file is run as it is)."""
    if wants_int8(precision, on_cpu):
        int8 = shipped_int8_passed(configured)
        if int8 is not None:
            return str(int8)
        if precision == "int8":
            log.warning(
                "model.precision int8: %s has no int8 sibling that passed its gate; running it", configured
            )
    return configured


class PrecisionWatcher(ModelWatcher):
    """A ``ModelWatcher`` that runs the variant ``model.precision`` chooses for the group's active version.

    The registry keeps naming the fp32 version as active; this watcher loads the variant instead (cases
    record the variant's version) and keeps it while the active version and its chosen variant stay the
    same, so an int8 variant registered later is picked up on a later poll like any model change.
    """

    def __init__(self, group: str, *, precision: str, on_cpu: bool, **kwargs: Any) -> None:
        super().__init__(group, **kwargs)
        self.precision, self.on_cpu = precision, on_cpu

    def _load_version(self, mv: ModelVersion) -> Loaded | None:
        with self._sessions() as session:
            target = self._target(session, mv)
        for loaded in (self._active, self._shadow):
            if loaded is not None and loaded.version == target.version:
                return None  # already serving the chosen variant: nothing to swap
        return super()._load_version(target)

    def _target(self, session: Session, mv: ModelVersion) -> ModelVersion:
        try:
            target = resolve_precision(session, session.merge(mv), self.precision, on_cpu=self.on_cpu)
            session.commit()  # the shipped int8 variant may have been registered just now
        except Exception as exc:  # the variant choice must never stop the group's model from loading
            log.warning(
                "camera group %s: precision choice failed (%s); running %s", self.group, exc, mv.version
            )
            session.rollback()
            return mv
        session.expunge(target)
        return target


class DetectorPool:
    """One detector per camera group in this process, shared by all its cameras.

    With ``model_path`` every group uses that ONNX (no hot reload: replay, benchmarks, ``--model``).
    Otherwise each group gets a ``urbaneye.hot_reload.ModelWatcher`` that follows the registry's active model
    and falls back to ``cameras_file.model.path`` / ``settings.model_path`` while none is registered.
    """

    def __init__(
        self,
        cameras_file: CamerasFile,
        *,
        model_path: str | None = None,
        watch: bool = True,
        poll_s: float = 10.0,
        session_factory: Any = None,
        detector_factory: Callable[[str], Any] | None = None,
    ) -> None:
        self.cameras_file = cameras_file
        self.model_path = model_path
        self.watch = watch and model_path is None
        self.poll_s = poll_s
        self.session_factory = session_factory
        self.detector_factory = detector_factory
        self._static: dict[str, Any] = {}
        self._watchers: dict[str, ModelWatcher] = {}
        self._lock = threading.Lock()

    def _static_path(self, group: str) -> str:
        """The file a group runs without a registry: ``--model`` as given, else the configured model or its
        passing int8 sibling, as the group's precision (``model.precision_for``) asks."""
        if self.model_path is not None:
            return self.model_path
        configured = self.cameras_file.model.path or str(get_settings().model_path)
        return static_model_path(configured, self.cameras_file.model.precision_for(group), runs_on_cpu())

    def _load_static(self, path: str) -> Any:
        if self.detector_factory is not None:
            return self.detector_factory(path)
        return OnnxDetector(path, self.cameras_file.model)

    def source(self, group: str) -> DetectorSource:
        """``() -> (detector, version)`` for a camera of ``group``; loads the model on first use."""
        with self._lock:
            if self.watch:
                watcher = self._watchers.get(group)
                if watcher is None:
                    watcher = self._start_watcher(group)
                if watcher is not None:
                    return watcher.current
            key = self._static_path(group)  # groups of the same precision share one detector
            detector = self._static.get(key)
            if detector is None:
                detector = self._static[key] = self._load_static(key)
            version = str(getattr(detector, "version", "unknown"))
            return lambda: (detector, version)

    def shadow_source(self, group: str, camera_id: str) -> Callable[[], tuple[Any, str] | None] | None:
        """``() -> (detector, version) | None`` of the shadow model on this camera, if the group is watched."""
        with self._lock:
            watcher = self._watchers.get(group)
        if watcher is None:
            return None
        return lambda: watcher.shadow(camera_id)

    def _start_watcher(self, group: str) -> ModelWatcher | None:
        model, on_cpu = self.cameras_file.model, runs_on_cpu()
        watcher = PrecisionWatcher(
            group,
            precision=model.precision_for(group),
            on_cpu=on_cpu,
            # while the group has no active model: the configured file, or its int8 sibling
            fallback_path=self._static_path(group),
            poll_s=self.poll_s,
            model_config=self.cameras_file.model,
            session_factory=self.session_factory,
        )
        try:
            watcher.start()
        except Exception as exc:
            # No registry (database not migrated, unreachable): run the configured model without reload.
            log.warning(
                "camera group %s: model registry unavailable (%s); using the configured model", group, exc
            )
            self.watch = False
            return None
        self._watchers[group] = watcher
        return watcher

    def stop(self) -> None:
        for watcher in self._watchers.values():
            watcher.stop()
