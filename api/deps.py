"""Dependencies handlers declare with ``Annotated`` aliases: ``SessionDep``, ``CurrentUser``, role guards."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.orm import Session

from api.auth import AuthError, TokenKind, client_address, decode_token, user_for_claims
from urbaneye.db.models import Role, User
from urbaneye.settings import Settings
from urbaneye.storage import EvidenceStore
from urbaneye.storage import get_store as make_store

LOGIN_PATH = "/api/v1/auth/login"
oauth2_scheme = OAuth2PasswordBearer(tokenUrl=LOGIN_PATH, auto_error=False)


def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_session(request: Request) -> Iterator[Session]:
    """One session per request; handlers commit their own writes (the service functions decide when)."""
    session = request.app.state.sessionmaker()
    try:
        yield session
    finally:
        session.close()


def get_store(request: Request) -> EvidenceStore:
    state = request.app.state
    if getattr(state, "store", None) is None:
        state.store = make_store(state.settings)
    return state.store


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
StoreDep = Annotated[Any, Depends(get_store)]


def get_current_user(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    token: Annotated[str | None, Depends(oauth2_scheme)],
) -> User:
    if not token:
        raise HTTPException(
            401,
            f"not logged in; send 'Authorization: Bearer <token>' from POST {LOGIN_PATH}",
            headers={"WWW-Authenticate": "Bearer"},
        )
    try:
        claims = decode_token(token, settings)
        user = user_for_claims(session, claims)
    except AuthError as exc:
        raise HTTPException(exc.status, str(exc), headers={"WWW-Authenticate": "Bearer"}) from None
    request.state.user = user  # for the access log and metrics
    request.state.token_kind = claims.kind
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


def get_session_user(request: Request, user: CurrentUser) -> User:
    """A person's own session (password login): service tokens may not log out or change passwords."""
    if request.state.token_kind is not TokenKind.ACCESS:
        raise HTTPException(403, "a service token is not a user session; log in with a password for this")
    return user


SessionUser = Annotated[User, Depends(get_session_user)]


def get_client_address(request: Request, settings: SettingsDep) -> str:
    """The client's address; ``X-Forwarded-For`` counts only from ``settings.trusted_proxies``."""
    peer = request.client.host if request.client else ""
    return client_address(peer, request.headers.get("x-forwarded-for"), settings.trusted_proxy_networks())


ClientAddress = Annotated[str, Depends(get_client_address)]


def require_role(*roles: Role) -> Callable[[User], User]:
    """A dependency that lets through only users with one of ``roles`` (403 otherwise)."""
    allowed = sorted({Role(r).value for r in roles})

    def check_role(user: CurrentUser) -> User:
        if user.role not in allowed:
            raise HTTPException(403, f"role '{user.role}' may not do this; it needs one of {allowed}")
        return user

    check_role.allowed_roles = allowed  # type: ignore[attr-defined]  # read by the authz tests
    return check_role


AdminUser = Annotated[User, Depends(require_role(Role.ADMIN))]
ReviewerUser = Annotated[User, Depends(require_role(Role.ADMIN, Role.REVIEWER))]
ReaderUser = Annotated[User, Depends(require_role(Role.ADMIN, Role.REVIEWER, Role.VIEWER))]
#: Readers plus workers (cameras config, active models).
WorkerOrReader = Annotated[User, Depends(require_role(Role.ADMIN, Role.REVIEWER, Role.VIEWER, Role.SERVICE))]
