"""ONNX Runtime session options of a detector, and the policy that steps them down under CPU contention.

``SessionTuning`` is what a session is built with (intra-op threads, whether idle pool threads spin,
execution mode). ``ThreadAdapter`` is the worker's reaction to a busy machine: it compares the inference
latency it is fed with the latency it saw while calibrating, and when a window of calls is much slower it
answers with the next, cheaper tuning (spinning off first, then half the threads); later it probes one
step back up and keeps it only if the latency there is healthy again (each failed probe doubles the wait
before the next one). It never reads a clock: the detector feeds it the ``infer`` stage's milliseconds, and
tests feed it numbers.

Why spinning matters: ORT's pool threads busy-wait after each run so the next run starts at once. On an
idle machine that buys a little latency; on a machine whose cores are taken (decoding, other workers, the
API) the spinning threads steal the very cores the other processes need, and a multi-thread session waits
on threads that are not scheduled. ``urbaneye bench --sections tuning --background-load 1`` measures it.

Example:
    >>> adapter = ThreadAdapter(SessionTuning(intra_op_threads=2, allow_spinning=True))
    >>> for ms in [20.0] * 20 + [45.0] * 20:
    ...     step = adapter.observe(ms)
    >>> step
    SessionTuning(intra_op_threads=2, allow_spinning=False, parallel=False)
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, replace
from typing import Any

#: The session config key that turns the intra-op pool's spin-waiting on ("1", ORT's default) or off ("0").
SPINNING_KEY = "session.intra_op.allow_spinning"


@dataclass(frozen=True)
class SessionTuning:
    """How one ONNX Runtime session runs.

    Attributes:
        intra_op_threads: threads of one inference (>= 1; resolve 0 = "all cores" with ``resolved``).
        allow_spinning: idle pool threads busy-wait for the next run (ORT's default) or sleep.
        parallel: ORT_PARALLEL execution mode (independent graph branches at once; one inter-op thread per
            core then); ORT_SEQUENTIAL otherwise.
    """

    intra_op_threads: int = 1
    allow_spinning: bool = False
    parallel: bool = False

    def __post_init__(self) -> None:
        if self.intra_op_threads < 0:
            raise ValueError(f"intra_op_threads must be >= 0 (0 = all cores); got {self.intra_op_threads}")

    def resolved(self, cpu_count: int) -> SessionTuning:
        """The same tuning with ``intra_op_threads=0`` replaced by ``cpu_count``."""
        return replace(self, intra_op_threads=self.intra_op_threads or max(cpu_count, 1))

    def label(self) -> str:
        """Short name for reports, e.g. ``"2t-spin-seq"``."""
        spin = "spin" if self.allow_spinning else "nospin"
        return f"{self.intra_op_threads}t-{spin}-{'par' if self.parallel else 'seq'}"

    def session_options(self, ort: Any) -> Any:
        """An ``ort.SessionOptions`` with these settings (``ort`` is the onnxruntime module)."""
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.intra_op_threads
        options.inter_op_num_threads = 0 if self.parallel else 1
        options.execution_mode = (
            ort.ExecutionMode.ORT_PARALLEL if self.parallel else ort.ExecutionMode.ORT_SEQUENTIAL
        )
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry(SPINNING_KEY, "1" if self.allow_spinning else "0")
        options.log_severity_level = 3  # errors only; provider fallback warnings are expected on CPU hosts
        return options


def step_down_ladder(start: SessionTuning) -> list[SessionTuning]:
    """Cheaper and cheaper tunings from ``start``: spinning off first, then threads halved down to 1.

    Example:
        >>> [t.label() for t in step_down_ladder(SessionTuning(4, allow_spinning=True))]
        ['4t-spin-seq', '4t-nospin-seq', '2t-nospin-seq', '1t-nospin-seq']
    """
    if start.intra_op_threads < 1:
        raise ValueError("resolve intra_op_threads=0 to a thread count first (SessionTuning.resolved)")
    ladder = [start]
    if start.allow_spinning:
        ladder.append(replace(start, allow_spinning=False))
    threads = start.intra_op_threads
    while threads > 1:
        threads //= 2
        ladder.append(replace(ladder[-1], intra_op_threads=threads, parallel=False))
    return ladder


@dataclass(frozen=True)
class AdapterState:
    """What the adapter has decided so far (for status pages and logs)."""

    tuning: SessionTuning
    level: int  # index in the ladder; 0 = the configured tuning
    baseline_ms: float | None  # calibrated latency at level 0; None while calibrating
    last_ratio: float | None  # median of the last full window / the level's expected latency
    steps_down: int
    probes: int


class ThreadAdapter:
    """Decides, from inference latencies, when a session should run cheaper (or try its tuning again).

    Args:
        start: the configured tuning (threads already resolved to a number).
        calibrate_calls: calls whose latencies make the baseline (their 25th percentile, so a burst of load
            during start-up does not make the baseline slow).
        window: calls per decision; the decision uses the window's median.
        oversubscribed_ratio: a window this many times slower than expected steps down. A level with fewer
            threads is expected to be slower in proportion (as if threads scaled perfectly), so stepping
            further down needs a real slow-down, not just the one the fewer threads explain.
        probe_after_calls: calls at a lower level before trying one level up; doubled after each failed
            probe (up to ``max_probe_after_calls``), reset by a successful one.

    ``observe(latency_ms)`` returns the tuning to rebuild the session with, or None to keep it.
    """

    def __init__(
        self,
        start: SessionTuning,
        *,
        calibrate_calls: int = 20,
        window: int = 20,
        oversubscribed_ratio: float = 1.6,
        probe_after_calls: int = 600,
        max_probe_after_calls: int = 20_000,
    ) -> None:
        if calibrate_calls < 1 or window < 1 or oversubscribed_ratio <= 1.0 or probe_after_calls < 1:
            raise ValueError(
                "ThreadAdapter needs calibrate_calls >= 1, window >= 1, oversubscribed_ratio > 1 and "
                "probe_after_calls >= 1"
            )
        self.ladder = step_down_ladder(start)
        self.calibrate_calls = calibrate_calls
        self.window = window
        self.ratio = oversubscribed_ratio
        self.probe_after_initial = self.probe_after = probe_after_calls
        self.max_probe_after = max(max_probe_after_calls, probe_after_calls)
        self.level = 0
        self.baseline_ms: float | None = None
        self.last_ratio: float | None = None
        self.steps_down = 0
        self.probes = 0
        self._samples: list[float] = []
        self._calls_at_level = 0
        self._probing = False

    @property
    def tuning(self) -> SessionTuning:
        return self.ladder[self.level]

    def state(self) -> AdapterState:
        return AdapterState(
            self.tuning, self.level, self.baseline_ms, self.last_ratio, self.steps_down, self.probes
        )

    def expected_ms(self, level: int) -> float:
        """The latency level ``level`` should have on an uncontended machine (baseline x thread ratio)."""
        assert self.baseline_ms is not None
        return self.baseline_ms * self.ladder[0].intra_op_threads / self.ladder[level].intra_op_threads

    def observe(self, latency_ms: float) -> SessionTuning | None:
        """Feed one inference latency; returns the new tuning when the session should be rebuilt."""
        if len(self.ladder) == 1:
            return None  # 1 thread, no spinning: nothing cheaper to step to
        self._samples.append(float(latency_ms))
        self._calls_at_level += 1
        if self.baseline_ms is None:
            if len(self._samples) >= self.calibrate_calls:
                self.baseline_ms = _percentile(self._samples, 0.25)
                self._samples.clear()
            return None
        if self.level > 0 and not self._probing and self._calls_at_level >= self.probe_after:
            return self._move(self.level - 1, probing=True)
        if len(self._samples) < self.window:
            return None
        self.last_ratio = statistics.median(self._samples) / self.expected_ms(self.level)
        self._samples.clear()
        slow = self.last_ratio >= self.ratio
        if self._probing:
            self._probing = False
            if slow:  # the machine is still busy: back down, wait twice as long before the next probe
                self.probe_after = min(self.probe_after * 2, self.max_probe_after)
                return self._move(self.level + 1)
            self.probe_after = self.probe_after_initial  # healthy again: keep this level
            return None
        if slow and self.level + 1 < len(self.ladder):
            self.steps_down += 1
            return self._move(self.level + 1)
        return None

    def _move(self, level: int, *, probing: bool = False) -> SessionTuning:
        self.level = level
        self._probing = probing
        self.probes += probing
        self._samples.clear()
        self._calls_at_level = 0
        return self.tuning


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]
