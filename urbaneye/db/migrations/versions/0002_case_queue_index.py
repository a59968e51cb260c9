"""Index for the escalation-first reviewer queue.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_cases_status_escalation_created",
        "cases",
        ["status", "escalation", "created_at", "id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_cases_status_escalation_created", table_name="cases")
