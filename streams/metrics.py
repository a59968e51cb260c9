"""Prometheus metrics of the stream workers, per camera, on ``settings.metrics_port``.

Frame, drop and reconnect counters are the cameras' own ``CameraHealth`` counters, read at scrape time
(no second bookkeeping in the capture hot loop); inference time and violation events are recorded as
they happen.

    urbaneye_stream_frames_in_total{camera}          frames read from the source
    urbaneye_stream_frames_processed_total{camera}   sampled frames through the rules (detect fps)
    urbaneye_stream_frames_detected_total{camera}    frames the detector ran on (after motion gating)
    urbaneye_stream_dropped_frames_total{camera}     sampled frames dropped because processing was behind
    urbaneye_stream_reconnects_total{camera}
    urbaneye_stream_input_fps{camera}, urbaneye_stream_detect_fps{camera}
    urbaneye_stream_camera_state{camera,state}       1 for the current state (online/degraded/offline)
    urbaneye_stream_inference_ms{camera}             histogram
    urbaneye_stream_violation_events_total{camera,kind,event}
    urbaneye_annotation_samples_total{outcome}        frames the annotation sampler took for the labelling
                                                      queue: sampled, queued, duplicates, dropped_*, failed
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Iterator
from typing import Protocol

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from streams.status import BOARD, CameraState, StatusBoard
from vision.types import ViolationEvent

log = logging.getLogger(__name__)

INFERENCE_BUCKETS_MS = (5, 10, 20, 40, 60, 80, 120, 160, 240, 320, 640, 1280, 2560)


class _BoardCollector(Collector):
    def __init__(self, board: StatusBoard) -> None:
        self.board = board

    def collect(self) -> Iterator[Metric]:
        snaps = self.board.snapshots()
        counters = {
            "frames_in": ("urbaneye_stream_frames_in", "Frames read from the camera source"),
            "frames_processed": ("urbaneye_stream_frames_processed", "Sampled frames through the rules"),
            "frames_detected": ("urbaneye_stream_frames_detected", "Frames the detector ran on"),
            "dropped_frames": ("urbaneye_stream_dropped_frames", "Sampled frames dropped: processing behind"),
            "reconnects": ("urbaneye_stream_reconnects", "Source reconnects"),
        }
        for attr, (name, doc) in counters.items():
            family = CounterMetricFamily(name, doc, labels=["camera"])
            for s in snaps:
                family.add_metric([s.camera_id], float(getattr(s, attr)))
            yield family
        for attr, doc in (
            ("input_fps", "Measured input frame rate"),
            ("detect_fps", "Frames processed per s"),
        ):
            gauge = GaugeMetricFamily(f"urbaneye_stream_{attr}", doc, labels=["camera"])
            for s in snaps:
                gauge.add_metric([s.camera_id], float(getattr(s, attr)))
            yield gauge
        state = GaugeMetricFamily(
            "urbaneye_stream_camera_state", "1 for the camera's state", labels=["camera", "state"]
        )
        for s in snaps:
            for st in CameraState:
                state.add_metric([s.camera_id, str(st)], 1.0 if s.state is st else 0.0)
        yield state


class Counted(Protocol):
    """Something that keeps its own outcome counters (``streams.annotation_sampler.AnnotationSampler``)."""

    @property
    def counts(self) -> dict[str, int]: ...


class _SamplerCollector(Collector):
    """The annotation samplers' counters, summed over this process's running worker stacks, at scrape time."""

    def __init__(self) -> None:
        self.samplers: weakref.WeakSet[Counted] = weakref.WeakSet()

    def collect(self) -> Iterator[Metric]:
        totals: dict[str, int] = {}
        for sampler in list(self.samplers):
            for outcome, n in sampler.counts.items():
                totals[outcome] = totals.get(outcome, 0) + n
        family = CounterMetricFamily(
            "urbaneye_annotation_samples",
            "Frames the annotation sampler took for the labelling queue, by outcome",
            labels=["outcome"],
        )
        for outcome, n in sorted(totals.items()):
            family.add_metric([outcome], float(n))
        yield family


class StreamMetrics:
    """The stream metrics of one registry. Use ``get_metrics()`` for the process-wide instance."""

    def __init__(self, board: StatusBoard = BOARD, registry: CollectorRegistry = REGISTRY) -> None:
        self.registry = registry
        self.inference_ms = Histogram(
            "urbaneye_stream_inference_ms",
            "Detector time per frame, ms (pre + inference + post-processing)",
            ["camera"],
            buckets=INFERENCE_BUCKETS_MS,
            registry=registry,
        )
        self.violation_events = Counter(
            "urbaneye_stream_violation_events",
            "Violation events handed off",
            ["camera", "kind", "event"],
            registry=registry,
        )
        registry.register(_BoardCollector(board))
        self._samplers = _SamplerCollector()
        registry.register(self._samplers)

    def observe_inference(self, camera_id: str, ms: float) -> None:
        self.inference_ms.labels(camera_id).observe(ms)

    def count_event(self, event: ViolationEvent) -> None:
        self.violation_events.labels(event.camera_id, str(event.kind), event.event).inc()

    def watch_sampler(self, sampler: Counted) -> None:
        """Export ``sampler``'s counters while it lives (``urbaneye_annotation_samples_total``)."""
        self._samplers.samplers.add(sampler)


_lock = threading.Lock()
_metrics: StreamMetrics | None = None
_served_port: int | None = None


def get_metrics() -> StreamMetrics:
    global _metrics
    with _lock:
        if _metrics is None:
            _metrics = StreamMetrics()
        return _metrics


def serve_metrics(port: int, addr: str = "0.0.0.0") -> int | None:
    """Expose the default registry on ``port`` (0 = off). Returns the port, or None if it could not bind.

    Binding fails softly: a second worker on the same machine with the same port must still process its
    cameras (give each process its own ``URBANEYE_METRICS_PORT``; ``--processes`` does).
    """
    global _served_port
    get_metrics()
    with _lock:
        if _served_port is not None:
            return _served_port
        if port <= 0:
            return None
        try:
            start_http_server(port, addr=addr)
        except OSError as exc:
            log.error("metrics not served: port %d: %s; set URBANEYE_METRICS_PORT to a free port", port, exc)
            return None
        _served_port = port
        log.info("metrics on http://%s:%d/metrics", addr, port)
        return port
