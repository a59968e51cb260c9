"""Reading JSON Lines files (detections, events): the one reader the replay and the scorer share.

Example:
    >>> for line_no, record in read_jsonl("runs/replay/events.jsonl", what="events"):  # doctest: +SKIP
    ...     print(line_no, record["event"])
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class JsonlError(ValueError):
    """A JSON Lines file that cannot be read or has a line that is not JSON; the message names the line."""


def read_jsonl(path: str | Path, *, what: str, hint: str = "") -> Iterator[tuple[int, Any]]:
    """``(line number, parsed value)`` of each non-blank line of ``path``, read as it is consumed.

    Args:
        path: the JSONL file.
        what: what the file holds, for messages (``"events"`` -> "cannot read events file ...").
        hint: how to get a readable file, appended to the cannot-read message.

    Raises:
        JsonlError: the file cannot be opened, or a line is not valid JSON (the message names the line).
    """
    path = Path(path)
    try:
        fh = path.open(encoding="utf-8")
    except OSError as exc:
        raise JsonlError(
            f"cannot read {what} file {path}: {exc.strerror}" + (f"; {hint}" if hint else "")
        ) from None
    with fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield n, json.loads(line)
            except json.JSONDecodeError as exc:
                raise JsonlError(
                    f"{path} line {n}: not valid JSON ({exc.msg}); write one JSON object per line"
                ) from None
