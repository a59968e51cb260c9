"""False-alarm memory per camera (issue 12)

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "false_alarm_memory",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("camera_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("bbox_xyxy", sa.JSON(), nullable=False),
        sa.Column("frame_wh", sa.JSON(), nullable=False),
        sa.Column("descriptor", sa.JSON(), nullable=False),
        sa.Column("descriptor_version", sa.String(length=32), nullable=False),
        sa.Column("case_id", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("crop_key", sa.String(length=255), nullable=False),
        sa.Column("created_by", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("suppressed_count", sa.Integer(), nullable=False),
        sa.Column("last_suppressed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("gone_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_false_alarm_memory")),
    )
    op.create_index(
        "ix_false_alarm_memory_camera_expires",
        "false_alarm_memory",
        ["camera_id", "expires_at"],
        unique=False,
    )
    op.create_index(op.f("ix_false_alarm_memory_case_id"), "false_alarm_memory", ["case_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_false_alarm_memory_case_id"), table_name="false_alarm_memory")
    op.drop_index("ix_false_alarm_memory_camera_expires", table_name="false_alarm_memory")
    op.drop_table("false_alarm_memory")
