"""Audit chain integrity: keyed MACs and checkpoints (issue 15)

``audit_log.mac`` holds HMAC-SHA256(settings.audit_key, hash): the key stays out of the database, so a
rewritten chain cannot be made to verify. ``audit_checkpoints`` lists the signed checkpoints of the head
written to the object store. Existing rows get their MACs here (with the key of the settings this runs
under), and every existing row of the covered tables one ``row_baseline`` entry, so ``audit verify``
can check all of them from now on.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from sqlalchemy.orm import Session

    from urbaneye.audit import baseline_covered_rows, row_mac

    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("mac", sa.String(length=64), nullable=True))
    op.create_table(
        "audit_checkpoints",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("head_id", sa.Integer(), nullable=False),
        sa.Column("head_hash", sa.String(length=64), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("signature", sa.String(length=64), nullable=False),
        sa.Column("object_key", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_checkpoints")),
    )
    conn = op.get_bind()
    audit = sa.table("audit_log", sa.column("id", sa.Integer()), sa.column("hash"), sa.column("mac"))
    for row_id, row_hash in conn.execute(sa.select(audit.c.id, audit.c.hash)).all():
        conn.execute(sa.update(audit).where(audit.c.id == row_id).values(mac=row_mac(row_hash)))
    session = Session(bind=conn)
    baseline_covered_rows(session)  # flushed into alembic's transaction; alembic commits it
    session.close()


def downgrade() -> None:
    op.drop_table("audit_checkpoints")
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("mac")
