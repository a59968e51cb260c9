"""Annotation queue of real frames (issue 14)

``annotation_items``: frames a stream worker sampled for labelling (near-threshold detections, static regions
no detection explains, periodic samples per time of day), each with its frame in the evidence store
(key + SHA-256, unique), provenance (camera, frame time, reason, model version, the model's boxes), the
reviewer's lease, and the result (boxes, "nothing here", skipped). Tables in ``urbaneye.db.annotations``.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "annotation_items",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("camera_id", sa.String(length=64), nullable=False),
        sa.Column("frame_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ts_s", sa.Float(), nullable=False),
        sa.Column("reason", sa.String(length=24), nullable=False),
        sa.Column("time_bucket", sa.String(length=16), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("proposals", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("labelled_by", sa.String(length=32), nullable=True),
        sa.Column("labelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("leased_by", sa.String(length=32), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_annotation_items")),
        sa.UniqueConstraint("sha256", name=op.f("uq_annotation_items_sha256")),
    )
    op.create_index(
        "ix_annotation_items_status_created", "annotation_items", ["status", "created_at"], unique=False
    )
    op.create_index(
        "ix_annotation_items_camera_status", "annotation_items", ["camera_id", "status"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_annotation_items_camera_status", table_name="annotation_items")
    op.drop_index("ix_annotation_items_status_created", table_name="annotation_items")
    op.drop_table("annotation_items")
