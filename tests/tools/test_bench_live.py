"""``urbaneye bench --sections live_queue``: the report's shape, every case seen, the server and the stream
reader gone afterwards. No bound on the latency itself: that figure is the bench's (target ≤ 3 s), and a
loaded CI machine must not fail a test over it."""

from __future__ import annotations

import contextlib
import io
import json
import math
import threading
from pathlib import Path

import psutil
import pytest
from sqlalchemy import create_engine, text

from api.routes.live import POLL_S
from tools import bench
from tools.bench_live import bench_live_queue, match_latencies, percentile
from urbaneye.cli import build_parser

REPORT_KEYS = {"cases", "seen", "latency_s", "target_s", "meets_target", "poll_s", "database"}


def _assert_report(report: dict, cases: int, database: str) -> None:
    json.dumps(report)  # JSON-ready
    assert set(report) >= REPORT_KEYS
    assert report["cases"] == cases and report["seen"] == cases, report
    assert report["database"] == database
    assert report["target_s"] == 3.0 and report["poll_s"] == POLL_S
    assert isinstance(report["meets_target"], bool)
    assert set(report["latency_s"]) == {"p50", "p95", "max"}
    figures = [*report["latency_s"].values(), *report["per_case_s"]]
    assert len(report["per_case_s"]) == cases
    assert all(isinstance(v, float) and math.isfinite(v) and v >= 0 for v in figures), figures
    assert report["latency_s"]["p50"] <= report["latency_s"]["p95"] <= report["latency_s"]["max"]


def _children() -> set[int]:
    """This process's live child processes (an earlier test's session fixtures may hold some)."""
    return {p.pid for p in psutil.Process().children(recursive=True) if p.is_running()}


def _leftovers(children_before: set[int]) -> tuple[list[str], set[int]]:
    """The bench's threads still running, and child processes started since ``children_before``."""
    threads = [t.name for t in threading.enumerate() if t.name.startswith("bench-live")]
    return threads, _children() - children_before


@pytest.mark.parametrize(
    "commits_s, events, base, expected",
    [
        ([10.0, 10.4], [(9.0, 0), (10.9, 2)], 0, [0.9, 0.5]),  # one poll counts two cases
        ([10.0, 11.0], [(9.0, 5), (10.5, 6), (11.5, 7)], 5, [0.5, 0.5]),  # a queue that was not empty
        ([10.0, 11.0], [(9.0, 0), (10.5, 1)], 0, [0.5]),  # the second case never shown: left out
    ],
)
def test_each_case_takes_the_first_event_that_counts_it(
    commits_s: list[float], events: list[tuple[float, int]], base: int, expected: list[float]
) -> None:
    assert match_latencies(commits_s, events, base) == pytest.approx(expected)


def test_percentile_is_a_measured_value() -> None:
    values = [0.1 * k for k in range(1, 21)]
    assert percentile(values, 50) == pytest.approx(1.0)
    assert percentile(values, 95) == pytest.approx(1.9)
    assert percentile([0.7], 95) == 0.7


def test_live_queue_sees_every_case_on_sqlite(tmp_path: Path) -> None:
    before = _children()
    report = bench_live_queue(f"sqlite:///{tmp_path / 'live.db'}", cases=3)
    _assert_report(report, 3, "sqlite")
    assert report["stream_error"] == ""
    assert _leftovers(before) == ([], set())


def test_live_queue_sees_every_case_on_postgresql(pg_url: str) -> None:
    before = _children()
    report = bench_live_queue(pg_url, cases=3)
    _assert_report(report, 3, "postgresql")
    engine = create_engine(pg_url)
    with engine.connect() as conn:  # a named database is left as it was found
        assert conn.execute(text("SELECT count(*) FROM cases")).scalar() == 0
        assert conn.execute(text("SELECT count(*) FROM users")).scalar() == 0
    engine.dispose()
    assert _leftovers(before) == ([], set())


def test_too_many_cases_for_one_stream_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="use at most"):
        bench_live_queue(f"sqlite:///{tmp_path / 'live.db'}", cases=1000)


def test_bench_cli_runs_the_live_queue_section(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("URBANEYE_BENCH_DATABASE_URL", raising=False)
    args = build_parser().parse_args(["bench", "--sections", "live_queue", "--json", "--quick"])
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert args.func(args) == 0
    result = json.loads(out.getvalue())
    assert set(result["section_s"]) == {"live_queue"} and "detector" not in result
    _assert_report(result["live_queue"], 5, "sqlite")
    assert "loaded" not in result["live_queue"]  # no --background-load


def test_background_load_runs_while_the_second_pass_measures(monkeypatch: pytest.MonkeyPatch) -> None:
    busy_during: list[int] = []
    before = _children()

    def fake_bench(db_url: str, cases: int) -> dict:
        busy_during.append(len(_children() - before))
        return {"cases": cases, "database": db_url.split(":", 1)[0]}

    monkeypatch.setattr(bench, "bench_live_queue", fake_bench)
    out = bench.live_queue_section(quick=True, load=2)
    assert busy_during == [0, 2]  # unloaded, then beside two busy-loop processes
    assert out["loaded"] == {"background_load": 2, "cases": 5, "database": "sqlite"}
    assert _children() - before == set()
