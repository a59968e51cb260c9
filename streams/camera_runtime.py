"""One camera running in a stream worker, and the configs of the worker's cameras.

A camera's config lives in one place per worker: ``WorkerCameras`` (every camera the worker may run) and,
for a running camera, its ``CameraRuntime``'s ``ConfigVersion``. Both are immutable values swapped whole
under a lock by the supervisor thread; the processing, hand-off and status threads only ever read the
current value. The processor applies a new version between two frames (``streams.processing``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from streams.camera import CameraProcessor
from streams.capture import CaptureThread, FrameBuffer
from streams.sources import SourceKind, source_kind
from streams.status import CameraHealth
from vision.config import CameraConfig


def is_live(camera: CameraConfig) -> bool:
    """Stream times are epoch seconds (a live source, or a file without ``start_time``)."""
    return camera.start_time is None or source_kind(camera.source.url) is not SourceKind.FILE


@dataclass(frozen=True)
class ConfigVersion:
    """One version of a running camera's config.

    ``number`` goes up with every edit; ``timeline`` goes up with every edit after which the stream's clock
    starts over (rule state cannot carry over), so a reader that skipped versions still learns of it.
    """

    camera: CameraConfig
    number: int = 1
    timeline: int = 1

    def next(self, camera: CameraConfig, *, new_timeline: bool) -> ConfigVersion:
        return ConfigVersion(camera, self.number + 1, self.timeline + (1 if new_timeline else 0))


class CameraRuntime:
    """One camera running in this worker: its config version, health, frame buffer and capture thread.

    The supervisor thread owns ``buffer``, ``capture`` and ``restart_after_mono`` and swaps the config
    (``swap``); the processing thread owns ``processor``, ``failed_processor``, ``error_count`` and
    ``applied`` (the version its processor runs).
    """

    def __init__(
        self, camera: CameraConfig, health: CameraHealth, buffer: FrameBuffer, capture: CaptureThread
    ) -> None:
        self._lock = threading.Lock()
        self._version = ConfigVersion(camera)
        self.health = health
        self.buffer = buffer
        self.capture = capture
        self.restart_after_mono = 0.0  # a crashed capture is restarted at most every CRASH_RESTART_S
        self.processor: CameraProcessor | None = None
        # A processor rebuilt after errors: its rules' state (dwell timers, open violations) carries over.
        self.failed_processor: CameraProcessor | None = None
        self.error_count = 0
        self.applied: ConfigVersion | None = None

    @property
    def camera_id(self) -> str:
        return self.health.camera_id

    @property
    def config(self) -> ConfigVersion:
        """The current config version (any thread)."""
        with self._lock:
            return self._version

    @property
    def camera(self) -> CameraConfig:
        return self.config.camera

    def swap(self, camera: CameraConfig, *, new_timeline: bool) -> ConfigVersion:
        """Make ``camera`` the current config (supervisor thread); the processor takes it before its next frame."""
        with self._lock:
            self._version = self._version.next(camera, new_timeline=new_timeline)
            return self._version


class CameraRuntimes:
    """The running cameras by id. The supervisor adds and removes; any thread takes a list."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[str, CameraRuntime] = {}

    def add(self, rt: CameraRuntime) -> None:
        with self._lock:
            self._by_id[rt.camera_id] = rt

    def pop(self, camera_id: str) -> CameraRuntime | None:
        with self._lock:
            return self._by_id.pop(camera_id, None)

    def get(self, camera_id: str) -> CameraRuntime | None:
        with self._lock:
            return self._by_id.get(camera_id)

    def all(self) -> list[CameraRuntime]:
        with self._lock:
            return list(self._by_id.values())

    def ids(self) -> list[str]:
        with self._lock:
            return sorted(self._by_id)


class WorkerCameras:
    """The configs of the cameras this worker may run (enabled and accepted; with leases it runs a share).

    One immutable mapping, replaced whole under a lock by the supervisor thread (``put``/``remove``);
    readers on any thread take ``current``. ``on_put`` hears of each new config before any frame of it is
    processed (the evidence keeper, which renders its events on the hand-off thread).
    """

    def __init__(
        self, cameras: Iterable[CameraConfig], on_put: Callable[[CameraConfig], None] | None = None
    ) -> None:
        self._lock = threading.Lock()
        self._current: Mapping[str, CameraConfig] = MappingProxyType({c.id: c for c in cameras})
        self._on_put = on_put

    @property
    def current(self) -> Mapping[str, CameraConfig]:
        with self._lock:
            return self._current

    def put(self, camera: CameraConfig) -> None:
        with self._lock:
            self._current = MappingProxyType({**self._current, camera.id: camera})
        if self._on_put is not None:
            self._on_put(camera)

    def remove(self, camera_id: str) -> None:
        with self._lock:
            self._current = MappingProxyType({k: v for k, v in self._current.items() if k != camera_id})
