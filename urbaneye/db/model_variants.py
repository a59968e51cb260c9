"""Precision variants in the model registry (issue 17): an int8 model quantised from an fp32 one.

An int8 variant is a ``ModelVersion`` of its own (its ``parent`` is the fp32 version, its ``gate`` the
int8 gate's decision against that parent); this table says that it is a variant and of which precision,
and keeps how it was calibrated and measured. fp32 models have no row.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from urbaneye.db.models import Base, utcnow


class ModelVariant(Base):
    __tablename__ = "model_variants"
    version: Mapped[str] = mapped_column(
        ForeignKey("model_versions.version", ondelete="CASCADE"), primary_key=True
    )
    precision: Mapped[str] = mapped_column(String(8))  # int8
    fp32_version: Mapped[str] = mapped_column(
        ForeignKey("model_versions.version", ondelete="CASCADE"), index=True
    )
    calibration: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # source, frames, detail
    comparison: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # mAP50 fp32/int8, ms, delta
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
