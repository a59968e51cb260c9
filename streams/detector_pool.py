"""The detectors of one stream worker: one per camera group, shared by all the group's cameras."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from streams.camera import DetectorSource
from urbaneye.hot_reload import ModelWatcher
from urbaneye.settings import get_settings
from vision.config import CamerasFile
from vision.detector import OnnxDetector

log = logging.getLogger(__name__)


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

    def _load_static(self, path: str | None) -> Any:
        if self.detector_factory is not None:
            return self.detector_factory(path or "")
        if path is None:
            path = self.cameras_file.model.path or str(get_settings().model_path)
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
            key = self.model_path or "__default__"
            detector = self._static.get(key)
            if detector is None:
                detector = self._static[key] = self._load_static(self.model_path)
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

        watcher = ModelWatcher(
            group,
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
