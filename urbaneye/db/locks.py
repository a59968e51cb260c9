"""One transaction-scoped lock that serialises writers across processes, on PostgreSQL and SQLite."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session


def lock_for_transaction(session: Session, pg_key: int, sqlite_table: str, sqlite_column: str) -> None:
    """Hold a lock until ``session``'s transaction ends.

    PostgreSQL: the advisory transaction lock ``pg_key``. SQLite: a write statement that changes nothing
    takes the database's RESERVED lock for the rest of the transaction, so no other connection writes
    between our read and our insert (``sqlite_table.sqlite_column`` names any existing column).

    Example:
        >>> lock_for_transaction(session, 0x55454155, "audit_log", "id")  # doctest: +SKIP
    """
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": pg_key})
    elif dialect == "sqlite":
        session.execute(text(f"UPDATE {sqlite_table} SET {sqlite_column} = {sqlite_column} WHERE 0"))
