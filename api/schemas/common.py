"""Shared response shapes and the error responses every router documents."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import BaseModel, Field, PlainSerializer


def iso_utc(t: dt.datetime) -> str:
    """ISO 8601 with its offset, in UTC (``2026-12-03T13:00:11.250000Z``). A naive time is UTC: the database
    stores UTC, and SQLite hands it back without a zone."""
    aware = t if t.tzinfo else t.replace(tzinfo=dt.UTC)
    return aware.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


#: Every datetime the API sends: always with its offset, so a browser never reads UTC as its local time.
UtcDatetime = Annotated[dt.datetime, PlainSerializer(iso_utc, return_type=str, when_used="json")]


class ErrorOut(BaseModel):
    """Every non-validation error: one sentence naming the thing and the fix."""

    detail: str = Field(description="what went wrong and what to do")


class Message(BaseModel):
    message: str


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the given error status codes."""
    text = {
        400: "malformed request (e.g. a body that is not JSON)",
        401: "missing, invalid or expired token",
        403: "the user's role may not do this",
        404: "not found",
        409: "conflicts with the current state",
        422: "validation error",
        429: "too many failed logins; retry later",
        503: "a dependency is unavailable",
    }
    return {code: {"model": ErrorOut, "description": text.get(code, "error")} for code in codes}


#: What every authenticated route can answer besides its own errors (422 is added by FastAPI).
AUTH_ERRORS = errors(400, 401, 403)
