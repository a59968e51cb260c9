"""Audit entries for administrative changes made through the API (cameras, zones, models, users).

Case status changes are audited by ``urbaneye.cases.service.transition``; this only covers what the API
itself changes, through the same hash-chained log (``urbaneye.audit.append_audit``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from urbaneye.audit import append_audit
from urbaneye.db.models import User


def actor_of(user: User) -> str:
    return f"user:{user.username}"


def record(
    session: Session, user: User, action: str, entity: str, entity_id: str, detail: dict[str, Any]
) -> None:
    append_audit(session, actor_of(user), action, entity, entity_id, "", "", detail)
