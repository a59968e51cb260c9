"""vision.ort_tuning: session options and the step-down policy, driven by injected latencies (no clock)."""

from __future__ import annotations

import onnxruntime as ort
import pytest

from vision.ort_tuning import SPINNING_KEY, SessionTuning, ThreadAdapter, step_down_ladder

CALIBRATION = [20.0] * 20  # ms of an idle 2-thread session


def feed(adapter: ThreadAdapter, latencies: list[float]) -> list[SessionTuning]:
    """Every tuning the adapter asked for while being fed ``latencies``."""
    return [t for t in (adapter.observe(ms) for ms in latencies) if t is not None]


@pytest.mark.parametrize(
    ("start", "labels"),
    [
        (SessionTuning(1), ["1t-nospin-seq"]),
        (SessionTuning(1, allow_spinning=True), ["1t-spin-seq", "1t-nospin-seq"]),
        (SessionTuning(2, allow_spinning=True), ["2t-spin-seq", "2t-nospin-seq", "1t-nospin-seq"]),
        (
            SessionTuning(8, parallel=True),
            ["8t-nospin-par", "4t-nospin-seq", "2t-nospin-seq", "1t-nospin-seq"],
        ),
    ],
)
def test_ladder_turns_spinning_off_first_then_halves_threads(start: SessionTuning, labels: list[str]) -> None:
    assert [t.label() for t in step_down_ladder(start)] == labels


def test_session_options_carry_threads_spinning_and_mode() -> None:
    spin = SessionTuning(2, allow_spinning=True).session_options(ort)
    quiet = SessionTuning(3, allow_spinning=False, parallel=True).session_options(ort)
    assert spin.intra_op_num_threads == 2 and spin.get_session_config_entry(SPINNING_KEY) == "1"
    assert spin.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert quiet.intra_op_num_threads == 3 and quiet.get_session_config_entry(SPINNING_KEY) == "0"
    assert quiet.execution_mode == ort.ExecutionMode.ORT_PARALLEL


def test_zero_threads_resolve_to_the_cores_and_must_be_resolved_for_a_ladder() -> None:
    assert SessionTuning(0).resolved(4).intra_op_threads == 4
    with pytest.raises(ValueError, match="resolve"):
        step_down_ladder(SessionTuning(0))


def test_steady_latency_keeps_the_tuning() -> None:
    adapter = ThreadAdapter(SessionTuning(2, allow_spinning=True))
    assert feed(adapter, CALIBRATION + [24.0] * 200) == []  # 1.2x: busy, not oversubscribed
    assert adapter.baseline_ms == 20.0 and adapter.state().last_ratio == pytest.approx(1.2)


def test_oversubscribed_steps_spinning_off_then_threads_down_then_holds() -> None:
    adapter = ThreadAdapter(SessionTuning(2, allow_spinning=True), probe_after_calls=10_000)
    assert feed(adapter, CALIBRATION + [40.0] * 20) == [SessionTuning(2, allow_spinning=False)]
    # still 2x at 2 threads without spinning: down to one thread
    assert feed(adapter, [40.0] * 20) == [SessionTuning(1, allow_spinning=False)]
    # one thread is expected to take twice as long (40 ms); 60 ms is 1.5x that: no further step exists anyway
    assert feed(adapter, [60.0] * 100) == []
    assert adapter.steps_down == 2 and adapter.tuning == SessionTuning(1)


def test_a_slow_window_after_calibration_is_judged_per_window_not_per_call() -> None:
    adapter = ThreadAdapter(SessionTuning(2, allow_spinning=True), window=10)
    # 9 slow calls do not decide; the 10th completes a window whose median is slow
    assert feed(adapter, CALIBRATION + [50.0] * 9) == []
    assert adapter.observe(50.0) == SessionTuning(2, allow_spinning=False)


def test_calibration_ignores_a_burst_of_load_at_start_up() -> None:
    adapter = ThreadAdapter(SessionTuning(2, allow_spinning=True))
    feed(adapter, [20.0] * 15 + [90.0] * 5)  # the 25th percentile is the quiet latency
    assert adapter.baseline_ms == 20.0


def test_probe_goes_back_up_and_backs_off_while_the_machine_stays_busy() -> None:
    adapter = ThreadAdapter(SessionTuning(2), probe_after_calls=50, max_probe_after_calls=150)
    assert feed(adapter, CALIBRATION + [45.0] * 20) == [SessionTuning(1)]
    # 50 calls at one thread (healthy for one thread: 40 ms expected), then a probe at two threads
    assert feed(adapter, [40.0] * 50) == [SessionTuning(2)]
    assert adapter.probes == 1
    # the probe window is still slow: back to one thread, and the next probe waits twice as long
    assert feed(adapter, [45.0] * 20) == [SessionTuning(1)]
    assert adapter.probe_after == 100
    assert feed(adapter, [40.0] * 99) == []
    assert feed(adapter, [40.0]) == [SessionTuning(2)]
    assert feed(adapter, [45.0] * 20) == [SessionTuning(1)]
    assert adapter.probe_after == 150  # capped


def test_a_healthy_probe_keeps_the_faster_tuning_and_resets_the_wait() -> None:
    adapter = ThreadAdapter(SessionTuning(2), probe_after_calls=50)
    feed(adapter, CALIBRATION + [45.0] * 20 + [40.0] * 50)
    assert adapter.tuning == SessionTuning(2)
    assert feed(adapter, [21.0] * 200) == []  # the load has gone: it stays at two threads
    assert adapter.tuning == SessionTuning(2) and adapter.probe_after == 50


def test_one_thread_without_spinning_has_nothing_to_adapt() -> None:
    adapter = ThreadAdapter(SessionTuning(1))
    assert feed(adapter, CALIBRATION + [500.0] * 100) == []
