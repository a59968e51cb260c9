"""Live queue: server-sent events telling open review screens that the queue changed (issue 18).

One ``EventSource`` per tab. Each API process runs one poller while any tab is connected: once a second it
reads a small fingerprint of the queue (pending count, newest pending case, last case change, live claims)
in one query and, when it changed, wakes every connected tab of that process. Polling the database, not
LISTEN/NOTIFY or Redis pub/sub, because cases are created by Celery workers and embedded runs in other
processes and on SQLite as well as PostgreSQL: the database is the one thing every deployment shares, and one
indexed query per second per process costs nothing whatever the number of tabs. A tab then fetches the queue
once per change.

``EventSource`` cannot send an ``Authorization`` header, and the long-lived session token must never sit in a
URL (access logs, history). ``POST /live/ticket`` (with the session token) returns a ticket signed with the
server key, good for one minute and only for ``GET /live/events?token=…`` (``token`` values are masked in the
access log, ``urbaneye/redact.py``). The stream checks it once when it opens; a tab asks for a new ticket
whenever it reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict, dataclass
from typing import Annotated

import jwt
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from api.auth import JWT_ALGORITHM
from api.deps import ReaderUser, SettingsDep
from api.schemas.cases import LiveTicket
from api.schemas.common import AUTH_ERRORS, errors, iso_utc
from urbaneye.db.models import Case, CaseClaim, CaseStatus, User, utcnow

log = logging.getLogger(__name__)
router = APIRouter(prefix="/live", tags=["live"])

TICKET_TTL_S = 60
TICKET_TYPE = "events"
POLL_S = 1.0
KEEPALIVE_S = 15.0
#: A stream ends after this long and the tab reconnects at once with a fresh ticket: a revoked session stops
#: receiving within minutes, and a server shutting down never waits long for an open tab.
STREAM_MAX_S = 300.0


@dataclass(frozen=True)
class QueueState:
    """What a review screen needs to know changed: sent as the ``queue`` event's data."""

    pending: int
    newest_pending: str  # ISO time of the newest pending case ("" when none)
    changed: str  # ISO time of the last change to any case
    claims: int  # live claims (a case taken or given back by a reviewer)
    claims_changed: str


def read_state(session: Session, now: dt.datetime) -> QueueState:
    """The queue's fingerprint in one query (index ``ix_cases_status_created``)."""
    pending = Case.status == CaseStatus.PENDING_REVIEW.value
    row = session.execute(
        select(
            select(func.count()).select_from(Case).where(pending).scalar_subquery(),
            select(func.max(Case.created_at)).where(pending).scalar_subquery(),
            select(func.max(Case.updated_at)).scalar_subquery(),
            select(func.count()).select_from(CaseClaim).where(CaseClaim.expires_at > now).scalar_subquery(),
            select(func.max(CaseClaim.claimed_at)).scalar_subquery(),
        )
    ).one()
    n, newest, changed, n_claims, claimed = row
    return QueueState(
        pending=int(n or 0),
        newest_pending=iso_utc(newest) if newest else "",
        changed=iso_utc(changed) if changed else "",
        claims=int(n_claims or 0),
        claims_changed=iso_utc(claimed) if claimed else "",
    )


class LiveFeed:
    """One poller per process, shared by every connected tab; it stops when the last tab leaves."""

    def __init__(self, make_session: sessionmaker) -> None:
        self._make_session = make_session
        self._listeners: set[asyncio.Queue[QueueState]] = set()
        self._task: asyncio.Task[None] | None = None
        self.state: QueueState | None = None

    def _read(self) -> QueueState:
        with self._make_session() as session:
            return read_state(session, utcnow())

    async def _poll(self) -> None:
        while self._listeners:
            try:
                state = await asyncio.to_thread(self._read)
            except Exception as exc:  # noqa: BLE001 - a database hiccup must not end the feed
                log.warning("live queue: could not read the queue state (retrying): %s", exc)
                state = None
            if state is not None and state != self.state:
                self.state = state
                for q in list(self._listeners):
                    if q.full():  # a tab that has not read the last state only needs this one
                        q.get_nowait()
                    q.put_nowait(state)
            await asyncio.sleep(POLL_S)
        self._task = None

    @contextlib.contextmanager
    def listen(self) -> Iterator[asyncio.Queue[QueueState]]:
        q: asyncio.Queue[QueueState] = asyncio.Queue(maxsize=1)  # only the latest state matters
        self._listeners.add(q)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._poll())
        try:
            yield q
        finally:
            self._listeners.discard(q)


def feed_of(request: Request) -> LiveFeed:
    app = request.app
    feed = getattr(app.state, "live_feed", None)
    if feed is None:
        feed = app.state.live_feed = LiveFeed(app.state.sessionmaker)
    return feed


@router.post("/ticket", response_model=LiveTicket, responses=AUTH_ERRORS)
def live_ticket(user: ReaderUser, settings: SettingsDep) -> LiveTicket:
    """A one-minute ticket for opening ``GET /live/events`` (EventSource sends no headers)."""
    expires = utcnow() + dt.timedelta(seconds=TICKET_TTL_S)
    claims = {"sub": user.id, "typ": TICKET_TYPE, "ver": user.token_version or 0, "exp": expires}
    return LiveTicket(
        token=jwt.encode(claims, settings.secret_key, algorithm=JWT_ALGORITHM), expires_at=expires
    )


def _ticket_user(make_session: sessionmaker, token: str, secret: str) -> str:
    """The user id a ticket speaks for, or 401 (in Chinese: the review screen shows it)."""
    if not token:
        raise HTTPException(401, "缺少事件票据；请用 POST /api/v1/live/ticket 获取后以 ?token= 传入")
    try:
        claims = jwt.decode(
            token, secret, algorithms=[JWT_ALGORITHM], options={"require": ["exp", "sub", "typ"]}
        )
    except jwt.InvalidTokenError:
        raise HTTPException(401, "事件票据无效或已过期；请用 POST /api/v1/live/ticket 重新获取") from None
    if claims.get("typ") != TICKET_TYPE:
        raise HTTPException(401, "这不是事件票据；请用 POST /api/v1/live/ticket 获取")
    with make_session() as session:
        user = session.get(User, str(claims["sub"]))
        if user is None or not user.is_active or int(claims.get("ver", -1)) != (user.token_version or 0):
            raise HTTPException(401, "登录已失效；请重新登录")
        return user.id


def _event(name: str, state: QueueState) -> str:
    return f"event: {name}\ndata: {json.dumps(asdict(state))}\n\n"


@router.get("/events", responses=errors(401), response_class=StreamingResponse)
async def live_events(
    request: Request,
    settings: SettingsDep,
    token: Annotated[str, Query(max_length=2000, description="ticket from POST /live/ticket")] = "",
) -> StreamingResponse:
    """``text/event-stream``: a ``queue`` event with the queue's state when the tab connects and whenever a
    case becomes pending, is decided, or is claimed or given back; a comment every 15 s keeps proxies open."""
    feed = feed_of(request)
    # the stream holds no database connection; the shared poller reads
    await asyncio.to_thread(_ticket_user, request.app.state.sessionmaker, token, settings.secret_key)

    async def stream() -> AsyncIterator[str]:
        yield "retry: 3000\n\n"
        ends = asyncio.get_running_loop().time() + STREAM_MAX_S
        with feed.listen() as q:
            if feed.state is not None:
                yield _event("queue", feed.state)
            while asyncio.get_running_loop().time() < ends and not await request.is_disconnected():
                try:
                    state = await asyncio.wait_for(q.get(), KEEPALIVE_S)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                yield _event("queue", state)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
