"""Unclassified (待分类) cases and configured violation kinds on cases (issues 14, 19)

``cases.kind`` may now hold a configured kind's id (``goods_display``) beside the built-in four, so the case
keeps the kind's Chinese name (``kind_name_zh``) for the UI, statistics and descriptions. ``unclassified``
marks a case raised from a static-object region only (the reviewer picks its kind), and ``evidence_stream``
says which stream the evidence frames came from (``main``, ``sub_fallback``; empty before this revision).
Existing rows get the defaults (built-in kind, classified, stream unknown). ``gbt_code`` and ``gbt_name`` widen
to what a configured kind may declare (``vision.kinds.KindSpec``: up to 12 digits, 60 characters).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("kind_name_zh", sa.String(length=60), server_default="", nullable=False))
        batch.add_column(sa.Column("unclassified", sa.Boolean(), server_default="false", nullable=False))
        batch.add_column(
            sa.Column("evidence_stream", sa.String(length=16), server_default="", nullable=False)
        )
        batch.alter_column("gbt_code", existing_type=sa.String(length=8), type_=sa.String(length=12))
        batch.alter_column("gbt_name", existing_type=sa.String(length=32), type_=sa.String(length=60))


def downgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.alter_column("gbt_name", existing_type=sa.String(length=60), type_=sa.String(length=32))
        batch.alter_column("gbt_code", existing_type=sa.String(length=12), type_=sa.String(length=8))
        batch.drop_column("evidence_stream")
        batch.drop_column("unclassified")
        batch.drop_column("kind_name_zh")
