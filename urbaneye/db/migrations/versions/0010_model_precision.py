"""Model precision (int8/fp32) in the registry (issue 17)

``model_variants``: one row per int8 variant of an fp32 model version (the variant is a model version of
its own; this row names its fp32 parent and keeps its calibration set and measured accuracy delta).

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_variants",
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("precision", sa.String(length=8), nullable=False),
        sa.Column("fp32_version", sa.String(length=64), nullable=False),
        sa.Column("calibration", sa.JSON(), nullable=False),
        sa.Column("comparison", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["version"],
            ["model_versions.version"],
            name=op.f("fk_model_variants_version_model_versions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["fp32_version"],
            ["model_versions.version"],
            name=op.f("fk_model_variants_fp32_version_model_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_model_variants")),
    )
    op.create_index(op.f("ix_model_variants_fp32_version"), "model_variants", ["fp32_version"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_model_variants_fp32_version"), table_name="model_variants")
    op.drop_table("model_variants")
