"""The bureau's statistics as JSON and CSV."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from fastapi.exceptions import RequestValidationError

from api.deps import ReaderUser, SessionDep
from api.schemas.cases import KindId
from api.schemas.common import AUTH_ERRORS
from api.schemas.stats import Period, StatsPublic
from api.services.stats import compute_stats, stats_csv

router = APIRouter(prefix="/stats", tags=["stats"], responses=AUTH_ERRORS)

MAX_RANGE_DAYS = 400


class _Range:
    def __init__(
        self,
        since: Annotated[
            dt.datetime | None, Query(description="start (ISO 8601); default 30 days before until")
        ] = None,
        until: Annotated[
            dt.datetime | None, Query(description="end, exclusive (ISO 8601); default now")
        ] = None,
        period: Period = Period.DAY,
        camera_id: Annotated[str | None, Query(max_length=64)] = None,
        kind: Annotated[
            list[KindId] | None, Query(description="only these kinds (built-in or configured ids)")
        ] = None,
    ) -> None:
        self.until = _aware(until) if until else dt.datetime.now(dt.UTC)
        self.since = _aware(since) if since else self.until - dt.timedelta(days=30)
        if self.since >= self.until:
            raise RequestValidationError(
                [
                    {
                        "loc": ("query", "since"),
                        "msg": "since must be before until; swap them",
                        "type": "value_error",
                    }
                ]
            )
        if self.until - self.since > dt.timedelta(days=MAX_RANGE_DAYS):
            raise RequestValidationError(
                [
                    {
                        "loc": ("query", "since"),
                        "msg": f"range is over {MAX_RANGE_DAYS} days; ask for a shorter range",
                        "type": "value_error",
                    }
                ]
            )
        self.period = period
        self.camera_id = camera_id
        self.kinds = kind


def _aware(t: dt.datetime) -> dt.datetime:
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


@router.get("", response_model=StatsPublic)
def get_stats(session: SessionDep, _: ReaderUser, r: Annotated[_Range, Depends()]) -> StatsPublic:
    """受理/办结/办结率, confirmed vs rejected, precision per camera and kind, median review time."""
    return compute_stats(session, r.since, r.until, r.period, r.camera_id, kinds=r.kinds)


@router.get(
    ".csv",
    response_class=Response,
    responses={
        200: {"content": {"text/csv": {}}, "description": "per period, channel and kind, plus a total row"}
    },
)
def get_stats_csv(session: SessionDep, _: ReaderUser, r: Annotated[_Range, Depends()]) -> Response:
    stats = compute_stats(session, r.since, r.until, r.period, r.camera_id, kinds=r.kinds)
    name = f"urbaneye-stats-{r.since.date()}-{r.until.date()}.csv"
    return Response(
        stats_csv(stats),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
