"""User administration (admin only) and service tokens for workers; every change is audited."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from sqlalchemy import func, select

from api.auth import create_user, hash_password, issue_token, revoke_tokens
from api.deps import AdminUser, SessionDep, SettingsDep
from api.schemas.auth import ServiceTokenRequest, Token, UserCreate, UserPublic, UsersPublic, UserUpdate
from api.schemas.common import AUTH_ERRORS, errors
from api.services.audit import record
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
    record(session, admin, "create_user", "user", user.id, {"username": user.username, "role": user.role})
    session.commit()
    return UserPublic.model_validate(user)


@router.patch("/{user_id}", response_model=UserPublic, responses=errors(404))
def update_user(user_id: str, body: UserUpdate, session: SessionDep, admin: AdminUser) -> UserPublic:
    user = _get(session, user_id)
    changes: dict[str, object] = {}
    if body.role is not None and body.role.value != user.role:
        changes["role"] = {"from": user.role, "to": body.role.value}
        user.role = body.role.value
    if body.display_name is not None and body.display_name != user.display_name:
        changes["display_name"] = {"from": user.display_name, "to": body.display_name}
        user.display_name = body.display_name
    if body.is_active is not None and body.is_active != user.is_active:
        changes["is_active"] = {"from": user.is_active, "to": body.is_active}
        user.is_active = body.is_active
    if body.password is not None:
        user.password_hash = hash_password(body.password)
        revoke_tokens(user)  # a reset password ends every session and service token of the user
        changes["password"] = "reset; tokens revoked"
    if changes:
        record(session, admin, "update_user", "user", user.id, {"username": user.username, **changes})
    session.commit()
    return UserPublic.model_validate(user)


@router.post("/{user_id}/service-token", response_model=Token, responses=errors(404, 409))
def service_token(
    user_id: str, body: ServiceTokenRequest, session: SessionDep, settings: SettingsDep, admin: AdminUser
) -> Token:
    """Issue a long-lived token for a worker's ``service`` user (deactivate the user, or reset its password,
    to revoke it)."""
    user = _get(session, user_id)
    try:
        issued = issue_token(user, settings, kind="service", ttl_s=body.ttl_s)
    except ValueError as exc:
        raise HTTPException(409, str(exc)) from None
    record(
        session,
        admin,
        "issue_service_token",
        "user",
        user.id,
        {"username": user.username, "expires_at": issued.expires_at.isoformat()},
    )
    session.commit()
    return Token(access_token=issued.token, expires_at=issued.expires_at, kind=issued.kind)
