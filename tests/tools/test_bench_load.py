"""tools.bench_load: the busy processes start, and end with the block, on an error, or by themselves."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.waiting import wait_for
from tools.bench_load import BackgroundLoad

ROOT = Path(__file__).resolve().parents[2]


def running(pid: int) -> bool:
    """The pid is a live process (not reaped, not a zombie)."""
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def busy(pid: int) -> bool:
    """The process is on a CPU or runnable (a busy loop), not sleeping."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return fields[0] == "R" or int(fields[11]) + int(fields[12]) > 0  # state, or any CPU time used


def test_load_processes_run_during_the_block_and_are_gone_after() -> None:
    with BackgroundLoad(2, max_s=120) as load:
        pids = load.pids
        assert len(pids) == 2 and load.alive() == 2
        wait_for(lambda: all(busy(p) for p in pids), timeout_s=30, what="load processes using CPU")
    assert not any(running(p) for p in pids)


def test_an_exception_in_the_block_still_ends_the_load() -> None:
    with pytest.raises(RuntimeError, match="bench failed"), BackgroundLoad(1, max_s=120) as load:
        pids = load.pids
        assert running(pids[0])
        raise RuntimeError("bench failed")
    assert not running(pids[0])


def test_a_keyboard_interrupt_in_the_block_still_ends_the_load() -> None:
    with pytest.raises(KeyboardInterrupt), BackgroundLoad(1, max_s=120) as load:
        pids = load.pids
        raise KeyboardInterrupt
    assert not running(pids[0])


def test_each_process_stops_by_itself_after_max_s() -> None:
    load = BackgroundLoad(1, max_s=0.5).start()
    try:
        wait_for(lambda: load.alive() == 0, timeout_s=30, what="the load process ending at its deadline")
    finally:
        load.stop()


def test_zero_processes_is_no_load_and_negative_is_refused() -> None:
    with BackgroundLoad(0) as load:
        assert load.pids == []
    with pytest.raises(ValueError, match=">= 0"):
        BackgroundLoad(-1)


def test_the_load_ends_when_the_benchmark_process_is_killed() -> None:
    """SIGKILL leaves no chance to clean up: the parent-death signal ends the busy process."""
    code = (
        "import sys, time\n"
        "from tools.bench_load import BackgroundLoad\n"
        "load = BackgroundLoad(1, max_s=120).start()\n"
        "print(load.pids[0], flush=True)\n"
        "time.sleep(120)\n"
    )
    bench = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        child = int(bench.stdout.readline())
        assert running(child)
    finally:
        bench.kill()
        bench.wait(timeout=30)
    wait_for(lambda: not running(child), timeout_s=30, what="the orphaned load process ending")
