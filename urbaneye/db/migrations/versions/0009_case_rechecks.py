"""Camera re-checks of dispatched cases (issue 19)

``case_rechecks``: one row per request to look at a case's place again (hotline 派遣/处置, schedule,
violation ended before dispatch, reviewer), claimed by the worker that holds the camera, with its result
(cleared / still_present / inconclusive), the after-photo's keys and SHA-256 and what the policy did.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "case_rechecks",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("case_id", sa.String(length=32), nullable=False),
        sa.Column("camera_id", sa.String(length=64), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("case_status", sa.String(length=16), nullable=False),
        sa.Column("requested_by", sa.String(length=64), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("worker_id", sa.String(length=128), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("window_s", sa.Float(), nullable=False),
        sa.Column("result", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("frames", sa.Integer(), nullable=False),
        sa.Column("usable_frames", sa.Integer(), nullable=False),
        sa.Column("present_frames", sa.Integer(), nullable=False),
        sa.Column("objects_after", sa.Integer(), nullable=False),
        sa.Column("present_bbox_xyxy", sa.JSON(), nullable=False),
        sa.Column("frame_wh", sa.JSON(), nullable=False),
        sa.Column("frame_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("clean_key", sa.String(length=255), nullable=False),
        sa.Column("clean_sha256", sa.String(length=64), nullable=False),
        sa.Column("annotated_key", sa.String(length=255), nullable=False),
        sa.Column("annotated_sha256", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_case_rechecks_case_id_cases"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_rechecks")),
    )
    op.create_index(op.f("ix_case_rechecks_case_id"), "case_rechecks", ["case_id"], unique=False)
    op.create_index("ix_case_rechecks_camera_state", "case_rechecks", ["camera_id", "state"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_case_rechecks_camera_state", table_name="case_rechecks")
    op.drop_index(op.f("ix_case_rechecks_case_id"), table_name="case_rechecks")
    op.drop_table("case_rechecks")
