"""What a stream worker reads and writes in the database, behind one small typed adapter.

The processing thread calls these between frames: each call opens its own session and returns plain
typed values (no ORM rows leave this module), so a slow or failing database only ever costs the caller
one logged warning.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from urbaneye.db.models import Case, CaseStatus
from urbaneye.memory import live_entries, record_updates
from urbaneye.registry import record_shadow_case
from vision.memory import MemoryEntry, MemoryUpdate
from vision.types import ViolationEvent

#: Offence times (epoch s) per place key, oldest first as stored.
EscalationHistory = dict[str, list[float]]


class WorkerDb:
    """The stream worker's database adapter.

    Args:
        session_factory: ``() -> Session`` (``urbaneye.db.session.session_factory``).
    """

    def __init__(self, session_factory: Callable[[], Any]) -> None:
        self.session_factory = session_factory

    def escalation_history(self, camera_id: str, window_s: float) -> EscalationHistory:
        """Offence times (epoch s) per place of a camera's cases in the escalation window, for 三色单."""
        since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=window_s)
        history: EscalationHistory = {}
        with self.session_factory() as session:
            rows = session.execute(
                select(Case.place_key, Case.started_at).where(
                    Case.camera_id == camera_id,
                    Case.started_at >= since,
                    Case.status != CaseStatus.REJECTED.value,
                )
            ).all()
        for place_key, started in rows:
            if place_key and started is not None:
                started = started if started.tzinfo else started.replace(tzinfo=dt.UTC)
                history.setdefault(place_key, []).append(started.timestamp())
        return history

    def live_memory(self, camera_ids: list[str]) -> dict[str, list[MemoryEntry]]:
        """Live false-alarm memory entries per camera id (every id present, possibly empty)."""
        with self.session_factory() as session:
            return live_entries(session, camera_ids)

    def sync_memory(self, updates: list[MemoryUpdate], camera_ids: list[str]) -> dict[str, list[MemoryEntry]]:
        """Save suppression counts / gone places, then return the cameras' live entries, in one session."""
        with self.session_factory() as session:
            if updates:
                record_updates(session, updates)
                session.commit()
            return live_entries(session, camera_ids)

    def record_shadow_opened(self, version: str, event: ViolationEvent) -> bool:
        """Count a shadow model's would-be case (``urbaneye.registry.record_shadow_case``). True if new."""
        return record_shadow_opened(self.session_factory, version, event)


def record_shadow_opened(session_factory: Callable[[], Any], version: str, event: ViolationEvent) -> bool:
    """Count a shadow model's would-be case (``urbaneye.registry.record_shadow_case``). True if new."""
    with session_factory() as session:
        new = record_shadow_case(session, version, event.camera_id, str(event.kind), event.violation_id)
        session.commit()
    return new
