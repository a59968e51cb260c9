"""Reviewer claims: a pending case is leased to one reviewer for a few minutes so that two reviewers working
the queue at once never review the same case (issue 18).

A claim is taken in one statement, ``INSERT ... ON CONFLICT (case_id) DO UPDATE ... WHERE the old claim has
expired or is the same reviewer's ... RETURNING``: on PostgreSQL the second of two racing inserts waits for the
first to commit and then finds the row taken; SQLite serialises writers with its database lock. Claims are
released on a decision, a skip or a logout, and lapse at ``expires_at`` (a closed tab holds nothing for long).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ColumnElement, delete, exists, not_, or_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from urbaneye.db.models import Case, CaseClaim

#: How long a reviewer holds the case on their screen before anyone else may take it.
CLAIM_LEASE_S = 300


def _aware(t: dt.datetime) -> dt.datetime:
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def held_by_others(user_id: str, now: dt.datetime) -> ColumnElement[bool]:
    """A filter on ``Case``: true where another reviewer holds a live claim on the case."""
    return exists().where(
        CaseClaim.case_id == Case.id, CaseClaim.user_id != user_id, CaseClaim.expires_at > now
    )


def free_for(user_id: str, now: dt.datetime) -> ColumnElement[bool]:
    """A filter on ``Case``: nobody else holds it now."""
    return not_(held_by_others(user_id, now))


def try_claim(
    session: Session, case_id: str, user_id: str, now: dt.datetime, lease_s: float = CLAIM_LEASE_S
) -> bool:
    """Lease ``case_id`` to ``user_id`` (or extend their lease) unless someone else holds it; not committed."""
    expires = now + dt.timedelta(seconds=lease_s)
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = insert(CaseClaim).values(case_id=case_id, user_id=user_id, claimed_at=now, expires_at=expires)
    stmt = stmt.on_conflict_do_update(
        index_elements=[CaseClaim.case_id],
        set_={"user_id": user_id, "claimed_at": now, "expires_at": expires},
        where=or_(CaseClaim.expires_at <= now, CaseClaim.user_id == user_id),
    ).returning(CaseClaim.case_id)
    return session.execute(stmt).scalar_one_or_none() is not None


def holder(session: Session, case_id: str, now: dt.datetime) -> CaseClaim | None:
    """The live claim on a case, if any."""
    claim = session.get(CaseClaim, case_id, populate_existing=True)
    if claim is None or _aware(claim.expires_at) <= now:
        return None
    return claim


def release(session: Session, case_id: str, user_id: str) -> int:
    """Give up ``user_id``'s claim on a case (skip, decision); not committed. Returns rows released."""
    result = session.execute(
        delete(CaseClaim).where(CaseClaim.case_id == case_id, CaseClaim.user_id == user_id)
    )
    return result.rowcount or 0


def release_all(session: Session, user_id: str) -> int:
    """Give up every claim of ``user_id`` (logout); not committed."""
    return session.execute(delete(CaseClaim).where(CaseClaim.user_id == user_id)).rowcount or 0
