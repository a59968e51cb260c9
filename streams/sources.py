"""Video sources through OpenCV's FFmpeg backend: RTSP (TCP), RTMP, HTTP MJPEG/HLS, files, local devices.

One ``VideoSource`` wraps one ``cv2.VideoCapture`` with bounded open and read timeouts, so a dead camera
costs at most a few seconds of one capture thread. Reconnecting is the caller's job (``streams.camera``).

Credentials never reach a log line or a status: every text that may contain a URL goes through
``mask_url``, and OpenCV's own warnings (which print the URL it failed to open) are silenced.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from urllib.parse import quote, urlsplit

import cv2
import numpy as np

from urbaneye.redact import mask_text
from vision.config import SourceConfig

log = logging.getLogger(__name__)

#: Both ≤ 5 s (issue): a dead camera must not hold a capture thread longer than this per attempt.
OPEN_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 4.0

# OpenCV prints "Error opening file" followed by the raw URL (user:pass included) as a WARNING; errors
# it logs carry no URL. Silence warnings process-wide before the first capture is opened.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

#: OPENCV_FFMPEG_CAPTURE_OPTIONS is a process-wide variable read inside ``VideoCapture.open``; opens that
#: need different options take turns. OpenCV serialises FFmpeg opens with its own global lock anyway.
_OPEN_LOCK = threading.Lock()


class SourceKind(StrEnum):
    RTSP = "rtsp"
    RTMP = "rtmp"
    HTTP = "http"  # MJPEG (multipart/x-mixed-replace) or HLS (.m3u8)
    FILE = "file"
    DEVICE = "device"

    @property
    def live(self) -> bool:
        return self is not SourceKind.FILE


def source_kind(url: str) -> SourceKind:
    """Classify a source URL: ``rtsp://``, ``rtmp://``, ``http(s)://``, a device index/path, else a file."""
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    if scheme in ("rtsp", "rtsps"):
        return SourceKind.RTSP
    if scheme in ("rtmp", "rtmps"):
        return SourceKind.RTMP
    if scheme in ("http", "https"):
        return SourceKind.HTTP
    if url.isdigit() or url.startswith("/dev/video"):
        return SourceKind.DEVICE
    return SourceKind.FILE


#: Every text here that may hold a URL (errors, status, labels) is masked by the one rule in
#: ``urbaneye.redact``; streams modules import it under this name.
mask_url = mask_text


def credentialed_url(source: SourceConfig) -> str:
    """The URL to open: ``source.username``/``password`` inserted (URL-quoted) into network URLs."""
    url = source.url
    if not source.username or source_kind(url) in (SourceKind.FILE, SourceKind.DEVICE):
        return url
    scheme, rest = url.split("://", 1)
    rest = rest.split("@", 1)[1] if "@" in rest.split("/", 1)[0] else rest
    cred = quote(source.username, safe="")
    if source.password:
        cred += ":" + quote(source.password, safe="")
    return f"{scheme}://{cred}@{rest}"


class SourceError(RuntimeError):
    """A source could not be opened or read. ``permanent`` means retrying soon will not help (bad file)."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(mask_url(message))
        self.permanent = permanent


@dataclass(frozen=True)
class StreamInfo:
    """What an opened source reports. ``fps``/``frame_count`` are 0 when the source does not say."""

    kind: SourceKind
    width_px: int
    height_px: int
    fps: float
    frame_count: int


def _capture_options(source: SourceConfig, kind: SourceKind) -> str:
    # FFmpeg demuxer options, "key;value|key;value". Only RTSP needs any: TCP interleaving survives NAT
    # and lossy links far better than UDP (smeared frames), and it is what the issue asks for.
    if kind is SourceKind.RTSP:
        return f"rtsp_transport;{source.rtsp_transport}"
    return ""


class VideoSource:
    """One OpenCV capture of a camera. Not thread-safe: the capture thread that opened it owns it.

    Args:
        source: the camera's source config (URL, credentials, transport, loop flag).
        open_timeout_s / read_timeout_s: FFmpeg interrupt timeouts (network sources).
        decode_threads: FFmpeg decoder threads; 1 per camera is best when one process decodes many.

    Example:
        >>> src = VideoSource(SourceConfig(url="clip.mp4"))  # doctest: +SKIP
        >>> info = src.open(); ok = src.grab(); frame = src.retrieve()  # doctest: +SKIP
    """

    def __init__(
        self,
        source: SourceConfig,
        *,
        open_timeout_s: float = OPEN_TIMEOUT_S,
        read_timeout_s: float = READ_TIMEOUT_S,
        decode_threads: int = 1,
    ) -> None:
        self.source = source
        self.kind = source_kind(source.url)
        self.label = mask_url(source.url)
        self.open_timeout_s = open_timeout_s
        self.read_timeout_s = read_timeout_s
        self.decode_threads = decode_threads
        self._cap: cv2.VideoCapture | None = None
        self._fps = 0.0
        self._grabbed = 0
        self._last_pos_s = -1.0

    @property
    def is_open(self) -> bool:
        return self._cap is not None

    def open(self) -> StreamInfo:
        """Open the source; raise ``SourceError`` naming the source (masked) and the fix."""
        self.close()
        if self.kind is SourceKind.FILE:
            path = Path(self.source.url)
            if not path.is_file():
                raise SourceError(
                    f"video file {path} does not exist; fix source.url in the cameras file", permanent=True
                )
        cap = self._open_capture()
        if not cap.isOpened():
            cap.release()
            raise self._open_error()
        self._cap = cap
        self._fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        if not np.isfinite(self._fps) or self._fps <= 0 or self._fps > 240:
            self._fps = 0.0  # MJPEG/HLS often report nonsense; time comes from the wall clock there
        self._grabbed = 0
        self._last_pos_s = -1.0
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if self.kind is SourceKind.FILE else 0
        return StreamInfo(
            kind=self.kind,
            width_px=int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0),
            height_px=int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0),
            fps=self._fps,
            frame_count=max(count, 0),
        )

    def _open_capture(self) -> cv2.VideoCapture:
        if self.kind is SourceKind.DEVICE:
            index = int(self.source.url) if self.source.url.isdigit() else self.source.url
            return cv2.VideoCapture(index, cv2.CAP_V4L2)
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
            int(self.open_timeout_s * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC,
            int(self.read_timeout_s * 1000),
            cv2.CAP_PROP_N_THREADS,
            int(self.decode_threads),
            # Decode on VAAPI/NVDEC/QSV when the machine has one (decoding 1080p is most of a camera's
            # CPU); OpenCV falls back to software silently when it has none.
            cv2.CAP_PROP_HW_ACCELERATION,
            cv2.VIDEO_ACCELERATION_ANY,
        ]
        url = credentialed_url(self.source)
        options = _capture_options(self.source, self.kind)
        with _OPEN_LOCK:
            os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = options
            return cv2.VideoCapture(url, cv2.CAP_FFMPEG, params)

    def _open_error(self) -> SourceError:
        if self.kind is SourceKind.FILE:
            return SourceError(
                f"video file {self.source.url} could not be opened: not a video, or corrupt/truncated "
                "(FFmpeg could not read its header); re-encode it or point source.url at a playable file",
                permanent=True,
            )
        if self.kind is SourceKind.DEVICE:
            return SourceError(f"video device {self.source.url} could not be opened; check it exists")
        return SourceError(
            f"could not open {self.kind.value} stream {self.label} within {self.open_timeout_s:g} s; check that "
            "the camera is reachable, the URL path and the credentials"
        )

    def grab(self) -> bool:
        """Read (demux + decode) the next frame without converting it; False at end or on a read failure."""
        if self._cap is None:
            return False
        ok = bool(self._cap.grab())
        if ok:
            self._grabbed += 1
        return ok

    def retrieve(self) -> np.ndarray | None:
        """The last grabbed frame as BGR ``uint8 (h, w, 3)``, or None if it cannot be converted."""
        if self._cap is None:
            return None
        ok, frame = self._cap.retrieve()
        return frame if ok and frame is not None and frame.size else None

    @property
    def frames_grabbed(self) -> int:
        return self._grabbed

    @property
    def fps(self) -> float:
        return self._fps

    def position_s(self) -> float:
        """Video time of the last grabbed frame, s: its timestamp, or frame index / fps when that is absent.

        Monotonic within one open: a timestamp that goes backwards (broken files) falls back to the index.
        """
        if self._cap is None or self._grabbed == 0:
            return 0.0
        pos_ms = float(self._cap.get(cv2.CAP_PROP_POS_MSEC) or 0.0)
        by_index = (self._grabbed - 1) / self._fps if self._fps else self._last_pos_s + 0.04
        pos_s = pos_ms / 1000.0 if np.isfinite(pos_ms) and (pos_ms > 0 or self._grabbed == 1) else by_index
        if pos_s <= self._last_pos_s:
            pos_s = max(by_index, self._last_pos_s + 1e-3)
        self._last_pos_s = pos_s
        return pos_s

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
