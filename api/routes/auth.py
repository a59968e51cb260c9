"""Login and the current user."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.security import OAuth2PasswordRequestForm

from api.auth import AuthError, authenticate, issue_token
from api.deps import CurrentUser, SessionDep, SettingsDep
from api.schemas.auth import Token, UserPublic
from api.schemas.common import errors

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post("/login", response_model=Token, responses=errors(400, 401, 429))
def login(
    request: Request,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    session: SessionDep,
    settings: SettingsDep,
) -> Token:
    """Exchange username + password (form fields) for a short-lived bearer token."""
    remote = request.client.host if request.client else ""
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


@router.get("/me", response_model=UserPublic, responses=errors(400, 401))
def me(user: CurrentUser) -> UserPublic:
    return UserPublic.model_validate(user)
