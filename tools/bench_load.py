"""Background load for ``urbaneye bench --background-load N``: N busy-loop processes beside the benchmark.

Each process is a bare ``python -c`` loop, bounded three ways: it stops by itself after ``max_s``, it
stops when its parent is gone (Linux parent-death signal, and a parent-pid check in the loop), and
``BackgroundLoad.__exit__`` terminates (then kills) every one of them, on an exception or Ctrl-C too.

Example:
    >>> with BackgroundLoad(1, max_s=600) as load:  # doctest: +SKIP
    ...     load.pids                                 # one busy core while the block runs
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from types import TracebackType

#: The busy loop: spins until its deadline or until its parent is gone; SIGINT/SIGTERM end it at once.
_BUSY_LOOP = """
import os, signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_DFL)
signal.signal(signal.SIGTERM, signal.SIG_DFL)
parent = int(sys.argv[1])
try:
    import ctypes
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
except OSError:
    pass
end = time.monotonic() + float(sys.argv[2])
x = 0
while time.monotonic() < end and os.getppid() == parent:
    for i in range(20000):
        x = (x * 31 + i) % 1000003
"""


@dataclass(frozen=True)
class LoadAverage:
    """``/proc/loadavg``'s 1, 5 and 15-minute load averages (runnable + uninterruptible tasks)."""

    one: float
    five: float
    fifteen: float

    @classmethod
    def now(cls) -> LoadAverage:
        one, five, fifteen = os.getloadavg()
        return cls(round(one, 2), round(five, 2), round(fifteen, 2))

    def to_json(self) -> list[float]:
        return [self.one, self.five, self.fifteen]


class BackgroundLoad:
    """``processes`` busy-loop processes while the ``with`` block runs (none when ``processes`` is 0).

    Args:
        processes: how many cores to keep busy.
        max_s: each process ends by itself after this long, whatever happens to the benchmark.
    """

    def __init__(self, processes: int, max_s: float = 900.0) -> None:
        if processes < 0:
            raise ValueError(f"background load must be >= 0 processes; got {processes}")
        if max_s <= 0:
            raise ValueError(f"background load max_s must be > 0; got {max_s}")
        self.processes = processes
        self.max_s = max_s
        self._procs: list[subprocess.Popen] = []

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs]

    def alive(self) -> int:
        """How many of the load processes are still running."""
        return sum(p.poll() is None for p in self._procs)

    def start(self) -> BackgroundLoad:
        try:
            for _ in range(self.processes):
                self._procs.append(
                    subprocess.Popen(
                        [sys.executable, "-c", _BUSY_LOOP, str(os.getpid()), str(self.max_s)],
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.DEVNULL,
                    )
                )
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Terminate every load process, kill those that do not go within 5 s, and reap them all."""
        for p in self._procs:
            if p.poll() is None:
                p.terminate()
        for p in self._procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)
        self._procs.clear()

    def __enter__(self) -> BackgroundLoad:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
