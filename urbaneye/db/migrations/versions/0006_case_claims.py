"""Reviewer claims on pending cases (issue 18)

``case_claims`` leases a pending case to one reviewer for a few minutes: the queue hands it to nobody else
and another reviewer's decision on it is refused with a message. A claim is taken atomically
(``INSERT ... ON CONFLICT DO UPDATE ... WHERE expired or mine``), released on skip, logout or a decision,
and simply lapses when it expires.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "case_claims",
        sa.Column("case_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_case_claims_case_id_cases"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("case_id", name=op.f("pk_case_claims")),
    )
    op.create_index(op.f("ix_case_claims_user_id"), "case_claims", ["user_id"], unique=False)
    op.create_index(op.f("ix_case_claims_expires_at"), "case_claims", ["expires_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_case_claims_expires_at"), table_name="case_claims")
    op.drop_index(op.f("ix_case_claims_user_id"), table_name="case_claims")
    op.drop_table("case_claims")
