"""The one polling helper of the tests: wait for the state a test asserts, with a generous deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T], timeout_s: float = 30.0, what: str = "", interval_s: float = 0.1
) -> T:
    """Poll ``predicate()`` every ``interval_s`` until it returns something truthy, and return that.

    Fails the test naming ``what`` when ``timeout_s`` passes first. Never a timing assertion: the
    deadline only bounds a hung test.

    Example:
        >>> wait_for(lambda: worker.frames_processed >= 20, 60, "worker running")  # doctest: +SKIP
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what or predicate}")
        time.sleep(interval_s)
