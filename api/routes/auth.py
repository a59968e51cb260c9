"""Login, logout, the current user and changing one's own password."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.security import OAuth2PasswordRequestForm

from api.auth import AuthError, authenticate, hash_password, issue_token, revoke_tokens, verify_password
from api.deps import ClientAddress, CurrentUser, SessionDep, SessionUser, SettingsDep
from api.schemas.auth import PasswordChange, Token, UserPublic
from api.schemas.common import errors
from api.services.audit import record
from urbaneye import annotations
from urbaneye.cases.claims import release_all

router = APIRouter(prefix="/auth", tags=["auth"])

#: A login form is two short fields; nothing bigger is read (api.app.BodyLimitMiddleware).
LOGIN_MAX_BODY_BYTES = 16 * 1024


@router.post("/login", response_model=Token, responses=errors(400, 401, 429))
def login(
    request: Request,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    session: SessionDep,
    settings: SettingsDep,
    remote: ClientAddress,
) -> Token:
    """Exchange username + password (form fields) for a short-lived bearer token.

    Throttled per (username, client address) and per address: after the free failures each try waits
    longer (429 with ``Retry-After``)."""
    try:
        user = authenticate(session, form.username, form.password, remote, settings)
    except AuthError as exc:
        request.app.state.metrics.login_failures.inc()
        headers = (
            {"Retry-After": str(exc.retry_after_s)} if exc.retry_after_s else {"WWW-Authenticate": "Bearer"}
        )
        raise HTTPException(exc.status, str(exc), headers=headers) from None
    issued = issue_token(user, settings)
    return Token(access_token=issued.token, expires_at=issued.expires_at, kind=issued.kind)


@router.post("/logout", status_code=204, responses=errors(400, 401, 403))
def logout(session: SessionDep, user: SessionUser) -> Response:
    """End the session: every token issued to this user so far stops working (all their devices), and the
    cases and annotation frames they held go back to their queues."""
    revoke_tokens(user)
    release_all(session, user.id)
    annotations.release(session, user.id)
    session.commit()
    return Response(status_code=204)


@router.post("/password", response_model=Token, responses=errors(400, 401, 403))
def change_password(
    body: PasswordChange, session: SessionDep, settings: SettingsDep, user: SessionUser
) -> Token:
    """Change one's own password; older tokens are revoked and a fresh one is returned."""
    if not verify_password(user.password_hash, body.current_password):
        raise HTTPException(403, "current password is wrong; type the password you logged in with")
    user.password_hash = hash_password(body.new_password)
    revoke_tokens(user)
    record(session, user, "change_password", "user", user.id, {"tokens_revoked": True})
    session.commit()
    issued = issue_token(user, settings)
    return Token(access_token=issued.token, expires_at=issued.expires_at, kind=issued.kind)


@router.get("/me", response_model=UserPublic, responses=errors(400, 401))
def me(user: CurrentUser) -> UserPublic:
    return UserPublic.model_validate(user)
