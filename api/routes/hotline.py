"""Status callbacks from the hotline platform (受理/派遣/处置/核查/结案). Authenticated by the HMAC
signature of the raw body (``urbaneye.hotline.signing``), not by a user token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from api.deps import SessionDep, SettingsDep
from api.schemas.common import errors
from urbaneye.cases.service import CaseNotFound, CaseStateError
from urbaneye.hotline.callbacks import apply_hotline_callback
from urbaneye.hotline.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, SignatureError

router = APIRouter(prefix="/hotline", tags=["hotline"])

#: A status update is a few hundred bytes of JSON; nothing bigger is read (api.app.BodyLimitMiddleware).
CALLBACK_MAX_BODY_BYTES = 64 * 1024


class CallbackOut(BaseModel):
    case_id: str
    status: str


@router.post("/callback", response_model=CallbackOut, responses=errors(400, 401, 404, 409))
async def hotline_callback(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    x_urbaneye_signature: Annotated[
        str | None, Header(description="sha256=<hex HMAC of 'timestamp.' + body>")
    ] = None,
    x_urbaneye_timestamp: Annotated[str | None, Header(description="unix seconds; ±300 s of now")] = None,
) -> CallbackOut:
    """Apply one signed status update from the hotline to its case (idempotent for repeats)."""
    if not x_urbaneye_signature or not x_urbaneye_timestamp:
        # unsigned: refused before the body is read
        raise HTTPException(
            401, f"missing {SIGNATURE_HEADER} or {TIMESTAMP_HEADER} header; sign the callback"
        )
    body = await request.body()

    def apply() -> CallbackOut:
        case = apply_hotline_callback(session, body, x_urbaneye_signature, x_urbaneye_timestamp, settings)
        session.commit()
        return CallbackOut(case_id=case.id, status=case.status)

    try:
        return await run_in_threadpool(apply)
    except SignatureError as exc:
        raise HTTPException(401, str(exc)) from None
    except CaseNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except CaseStateError as exc:
        raise HTTPException(409, str(exc)) from None
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
