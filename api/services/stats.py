"""The bureau's figures over a time range: per period, channel and kind; precision per camera and kind.

Periods are local calendar days/weeks/months (``Asia/Shanghai`` by default), so grouping happens here
rather than in SQL (SQLite and PostgreSQL disagree on date functions).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.schemas.stats import Figures, Period, PrecisionRow, StatsPublic, StatsRow, StatsTotals
from urbaneye.cases.describe import kind_name_zh
from urbaneye.db.models import Case, CaseStatus, Review

RECEIVED = {
    CaseStatus.ACCEPTED,
    CaseStatus.DISPATCHED,
    CaseStatus.HANDLED,
    CaseStatus.VERIFIED,
    CaseStatus.CLOSED,
}
CONFIRMED = RECEIVED | {CaseStatus.CONFIRMED, CaseStatus.QUEUED, CaseStatus.DEAD_LETTER}
RECEIVED_V = {s.value for s in RECEIVED}
CONFIRMED_V = {s.value for s in CONFIRMED}


def _period_start(t: dt.datetime, period: Period, tz: ZoneInfo) -> str:
    local = (t if t.tzinfo else t.replace(tzinfo=dt.UTC)).astimezone(tz).date()
    if period == Period.WEEK:
        local -= dt.timedelta(days=local.weekday())
    elif period == Period.MONTH:
        local = local.replace(day=1)
    return local.isoformat()


def _count(fig: Figures, status: str, unclassified: bool) -> None:
    fig.detected += 1
    if status == CaseStatus.PENDING_REVIEW.value:
        fig.pending += 1
        fig.unclassified += int(unclassified)
    elif status == CaseStatus.REJECTED.value:
        fig.rejected += 1
    elif status in CONFIRMED_V:
        fig.confirmed += 1
    if status in RECEIVED_V:
        fig.received += 1
    if status == CaseStatus.CLOSED.value:
        fig.closed += 1


def _rates(fig: Figures) -> None:
    fig.closure_rate = round(fig.closed / fig.received, 4) if fig.received else None
    decided = fig.confirmed + fig.rejected
    fig.precision = round(fig.confirmed / decided, 4) if decided else None


@dataclass
class _Tally:
    """Counts of one pass over the range's cases."""

    rows: dict[tuple[str, str, str], StatsRow] = field(default_factory=dict)  # (period, channel, kind)
    per_camera: dict[tuple[str, str], list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))
    names: dict[str, str] = field(default_factory=dict)  # kind -> Chinese name
    totals: StatsTotals = field(default_factory=StatsTotals)
    to_review_s: list[float] = field(default_factory=list)


def _tally(session: Session, conds: list, period: Period, tz: ZoneInfo) -> _Tally:
    q = select(
        Case.created_at,
        Case.reviewed_at,
        Case.source_channel,
        Case.kind,
        Case.camera_id,
        Case.status,
        Case.unclassified,
        Case.kind_name_zh,
        Case.gbt_code,
    ).where(*conds)
    t = _Tally()
    rows, per_camera, names, totals = t.rows, t.per_camera, t.names, t.totals
    for created, reviewed, channel, kind, cam, status, unclassified, name_zh, code in session.execute(q):
        names[kind] = names.get(kind) or kind_name_zh(kind, name_zh)  # older cases carry no name
        key = (_period_start(created, period, tz), channel, kind)
        row = rows.get(key)
        if row is None:
            row = rows[key] = StatsRow(
                period=key[0], channel=channel, kind=kind, kind_name_zh=names[kind], gbt_code=code
            )
        _count(row, status, unclassified)
        _count(totals, status, unclassified)
        if status in CONFIRMED_V:
            per_camera[(cam, kind)][0] += 1
        elif status == CaseStatus.REJECTED.value:
            per_camera[(cam, kind)][1] += 1
        if reviewed is not None and status != CaseStatus.PENDING_REVIEW.value:
            created_a = created if created.tzinfo else created.replace(tzinfo=dt.UTC)
            reviewed_a = reviewed if reviewed.tzinfo else reviewed.replace(tzinfo=dt.UTC)
            t.to_review_s.append((reviewed_a - created_a).total_seconds())
    return t


def compute_stats(
    session: Session,
    since: dt.datetime,
    until: dt.datetime,
    period: Period = Period.DAY,
    camera_id: str | None = None,
    tz_name: str = "Asia/Shanghai",
    kinds: list[str] | None = None,
) -> StatsPublic:
    """Figures of the cases created in [since, until) (one camera, some kinds, if given). Kinds are grouped by
    id, configured kinds included, each named by its cases' Chinese name."""
    conds = [Case.created_at >= since, Case.created_at < until]
    if camera_id:
        conds.append(Case.camera_id == camera_id)
    if kinds:
        conds.append(Case.kind.in_(kinds))
    t = _tally(session, conds, period, ZoneInfo(tz_name))
    rows, names, totals = t.rows, t.names, t.totals
    for row in rows.values():
        row.kind_name_zh = names[row.kind]
        _rates(row)
    _rates(totals)
    rq = (
        select(Review.duration_ms)
        .join(Case, Case.id == Review.case_id)
        .where(*conds, Review.decision.in_(("confirm", "reject")), Review.duration_ms.is_not(None))
    )
    durations = [d for (d,) in session.execute(rq)]
    totals.median_review_ms = float(statistics.median(durations)) if durations else None
    totals.median_time_to_review_s = round(statistics.median(t.to_review_s), 1) if t.to_review_s else None
    precision = [
        PrecisionRow(
            camera_id=c,
            kind=k,
            kind_name_zh=names[k],
            confirmed=n[0],
            rejected=n[1],
            precision=round(n[0] / (n[0] + n[1]), 4),
        )
        for (c, k), n in sorted(t.per_camera.items())
    ]
    rate = f"{totals.closure_rate * 100:.1f}%" if totals.closure_rate is not None else "—"
    report = [
        f"受理 {totals.received}件，办结 {totals.closed}件，办结率 {rate}",
        f"AI 发现 {totals.detected}件：确认 {totals.confirmed}件，驳回 {totals.rejected}件，待审 {totals.pending}件"
        + (f"（其中待分类 {totals.unclassified}件）" if totals.unclassified else ""),
    ]
    return StatsPublic(
        since=since,
        until=until,
        period=period,
        timezone=tz_name,
        totals=totals,
        rows=sorted(rows.values(), key=lambda r: (r.period, r.channel, r.kind)),
        precision_by_camera=precision,
        report=report,
    )


CSV_FIELDS = [
    "period",
    "channel",
    "kind",
    "kind_name_zh",
    "gbt_code",
    "detected",
    "pending",
    "unclassified",
    "confirmed",
    "rejected",
    "received",
    "closed",
    "closure_rate",
    "precision",
]


def stats_csv(stats: StatsPublic) -> str:
    """Rows as CSV (UTF-8 with BOM so spreadsheet programs show the Chinese channel names)."""
    buf = io.StringIO()
    buf.write("\ufeff")
    w = csv.writer(buf)
    w.writerow(CSV_FIELDS)
    for r in stats.rows:
        w.writerow([getattr(r, f) if getattr(r, f) is not None else "" for f in CSV_FIELDS])
    t = stats.totals
    w.writerow(
        [
            "total",
            "",
            "",
            "",
            "",
            t.detected,
            t.pending,
            t.unclassified,
            t.confirmed,
            t.rejected,
            t.received,
            t.closed,
            t.closure_rate if t.closure_rate is not None else "",
            t.precision if t.precision is not None else "",
        ]
    )
    return buf.getvalue()
