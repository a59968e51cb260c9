"""User administration (admin only) and service tokens for workers."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from sqlalchemy import func, select

from api.auth import create_user, hash_password, issue_token
from api.deps import AdminUser, SessionDep, SettingsDep
from api.schemas.auth import ServiceTokenRequest, Token, UserCreate, UserPublic, UsersPublic, UserUpdate
from api.schemas.common import AUTH_ERRORS, errors
from urbaneye.db.models import User

router = APIRouter(prefix="/users", tags=["users"], responses=AUTH_ERRORS)


def _get(session, user_id: str) -> User:  # noqa: ANN001
    user = session.get(User, user_id)
    if user is None:
        raise HTTPException(404, f"no user with id '{user_id}'; list users with GET /api/v1/users")
    return user


@router.get("", response_model=UsersPublic)
def list_users(session: SessionDep, _: AdminUser) -> UsersPublic:
    users = session.scalars(select(User).order_by(User.username)).all()
    return UsersPublic(data=[UserPublic.model_validate(u) for u in users], count=len(users))


@router.post("", response_model=UserPublic, status_code=201, responses=errors(409))
def add_user(body: UserCreate, session: SessionDep, admin: AdminUser) -> UserPublic:
    if session.scalar(select(func.count()).select_from(User).where(User.username == body.username)):
        raise HTTPException(409, f"user '{body.username}' already exists; pick another username")
    user = create_user(session, body.username, body.password, body.role, body.display_name)
    session.commit()
    return UserPublic.model_validate(user)


@router.patch("/{user_id}", response_model=UserPublic, responses=errors(404))
def update_user(user_id: str, body: UserUpdate, session: SessionDep, admin: AdminUser) -> UserPublic:
    user = _get(session, user_id)
    if body.role is not None:
        user.role = body.role.value
    if body.display_name is not None:
        user.display_name = body.display_name
    if body.is_active is not None:
        user.is_active = body.is_active
    if body.password is not None:
        user.password_hash = hash_password(body.password)
    session.commit()
    return UserPublic.model_validate(user)


@router.post("/{user_id}/service-token", response_model=Token, responses=errors(404, 409))
def service_token(
    user_id: str, body: ServiceTokenRequest, session: SessionDep, settings: SettingsDep, admin: AdminUser
) -> Token:
    """Issue a long-lived token for a worker's ``service`` user (deactivate the user to revoke it)."""
    user = _get(session, user_id)
    try:
        issued = issue_token(user, settings, kind="service", ttl_s=body.ttl_s)
    except ValueError as exc:
        raise HTTPException(409, str(exc)) from None
    return Token(access_token=issued.token, expires_at=issued.expires_at, kind=issued.kind)
