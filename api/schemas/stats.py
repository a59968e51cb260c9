from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field

from api.schemas.common import UtcDatetime


class Period(StrEnum):
    DAY = "day"
    WEEK = "week"  # ISO week starting Monday
    MONTH = "month"


class Figures(BaseModel):
    detected: int = Field(0, description="cases created (AI detections that became cases)")
    pending: int = Field(0, description="still awaiting review")
    unclassified: int = Field(
        0, description="待分类: awaiting review and a kind (raised from a static object)"
    )
    confirmed: int = Field(0, description="confirmed by a reviewer (any later status included)")
    rejected: int = Field(0, description="rejected by a reviewer")
    received: int = Field(0, description="受理: accepted by the hotline (accepted … closed)")
    closed: int = Field(0, description="办结: closed by the hotline")
    closure_rate: float | None = Field(None, description="办结率 = closed / received")
    precision: float | None = Field(None, description="confirmed / (confirmed + rejected)")


class StatsRow(Figures):
    period: str = Field(description="period start, local date YYYY-MM-DD")
    channel: str = Field(description="source channel, e.g. 视频抓拍")
    kind: str = Field(description="built-in or configured kind id")
    kind_name_zh: str = Field(description="the kind's Chinese name")
    gbt_code: str = Field(description="the kind's GB/T 30428.2 code (the latest case's)")


class PrecisionRow(BaseModel):
    camera_id: str
    kind: str
    kind_name_zh: str
    confirmed: int
    rejected: int
    precision: float | None


class StatsTotals(Figures):
    median_review_ms: float | None = Field(None, description="median time a reviewer spent on a case")
    median_time_to_review_s: float | None = Field(
        None, description="median delay from case creation to decision"
    )


class StatsPublic(BaseModel):
    since: UtcDatetime
    until: UtcDatetime
    period: Period
    timezone: str
    totals: StatsTotals
    rows: list[StatsRow]
    precision_by_camera: list[PrecisionRow]
    report: list[str] = Field(description="the bureau's sentences: 受理 X件，办结 X件，办结率 X%")
