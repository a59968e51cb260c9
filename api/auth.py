"""Users, password hashing (argon2), JWT access/service tokens and failed-login rate limiting.

Access tokens are short-lived (``settings.access_token_ttl_s``); service tokens for stream and Celery
workers are long-lived but tied to a ``service`` user, so deactivating the user revokes them (every
request re-reads the user row).
"""

from __future__ import annotations

import datetime as dt
import getpass
from dataclasses import dataclass

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from urbaneye.db.models import LoginAttempt, Role, User, utcnow
from urbaneye.settings import Settings

_hasher = PasswordHasher()
JWT_ALGORITHM = "HS256"
SERVICE_TOKEN_MAX_TTL_S = 366 * 86400

#: Demo accounts (``urbaneye run --demo``); documented in the README, never created in production.
DEMO_USERS: tuple[tuple[str, str, Role, str], ...] = (
    ("admin", "admin-demo", Role.ADMIN, "演示管理员"),
    ("demo", "demo-review", Role.REVIEWER, "演示审核员"),
)


class AuthError(Exception):
    """Login or token failure; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 401, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after_s = retry_after_s


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def validate_password(password: str) -> None:
    if len(password) < 8:
        raise ValueError("password must have at least 8 characters; choose a longer one")


def create_user(
    session: Session, username: str, password: str, role: Role | str, display_name: str = ""
) -> User:
    """Add a user (not committed). Raises ``ValueError`` naming the problem and the fix."""
    role = Role(role)
    validate_password(password)
    if session.scalar(select(User).where(User.username == username)) is not None:
        raise ValueError(f"user '{username}' already exists; pick another username or change that user")
    user = User(
        username=username, password_hash=hash_password(password), role=role.value, display_name=display_name
    )
    session.add(user)
    session.flush()
    return user


def ensure_demo_users(session: Session) -> list[User]:
    """Create the demo admin ``admin``/``admin-demo`` and reviewer ``demo``/``demo-review`` if missing."""
    users = []
    for username, password, role, display in DEMO_USERS:
        user = session.scalar(select(User).where(User.username == username))
        if user is None:
            user = create_user(session, username, password, role, display)
        users.append(user)
    session.commit()
    return users


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_at: dt.datetime
    kind: str  # access | service


def issue_token(
    user: User, settings: Settings, kind: str = "access", ttl_s: int | None = None
) -> IssuedToken:
    """Sign a JWT for ``user``. ``kind='service'`` requires a service user and allows a long ttl."""
    if kind == "service":
        if user.role != Role.SERVICE.value:
            raise ValueError(
                f"user '{user.username}' has role {user.role}; service tokens need role 'service'"
            )
        ttl_s = min(ttl_s or 30 * 86400, SERVICE_TOKEN_MAX_TTL_S)
    else:
        ttl_s = min(ttl_s or settings.access_token_ttl_s, settings.access_token_ttl_s)
    now = utcnow()
    expires = now + dt.timedelta(seconds=ttl_s)
    claims = {"sub": user.id, "role": user.role, "typ": kind, "iat": now, "exp": expires}
    return IssuedToken(jwt.encode(claims, settings.secret_key, algorithm=JWT_ALGORITHM), expires, kind)


def user_from_token(session: Session, token: str, settings: Settings) -> User:
    """The active user a token belongs to; ``AuthError`` (401) otherwise."""
    try:
        claims = jwt.decode(
            token, settings.secret_key, algorithms=[JWT_ALGORITHM], options={"require": ["exp", "sub"]}
        )
    except jwt.ExpiredSignatureError:
        raise AuthError("token expired; log in again") from None
    except jwt.InvalidTokenError:
        raise AuthError("invalid token; log in again") from None
    user = session.get(User, str(claims["sub"]))
    if user is None or not user.is_active:
        raise AuthError("user unknown or deactivated; ask an administrator")
    return user


def authenticate(session: Session, username: str, password: str, remote: str, settings: Settings) -> User:
    """Check a password with lockout after ``login_max_failures`` failures within ``login_lockout_s``.

    Failures are recorded (and committed) even though the caller gets an error, so the limit holds
    across processes. A success clears the user's failures.
    """
    window_start = utcnow() - dt.timedelta(seconds=settings.login_lockout_s)
    recent = select(func.count(), func.min(LoginAttempt.at)).where(
        LoginAttempt.username == username, LoginAttempt.at >= window_start
    )
    failures, oldest = session.execute(recent).one()
    if failures >= settings.login_max_failures:
        oldest = oldest if oldest.tzinfo else oldest.replace(tzinfo=dt.UTC)
        retry = int((oldest - window_start).total_seconds()) + 1
        raise AuthError(
            f"too many failed logins for '{username}'; wait {retry} s and try again",
            status=429,
            retry_after_s=max(retry, 1),
        )
    user = session.scalar(select(User).where(User.username == username))
    # hash anyway for unknown users so response time does not reveal which usernames exist
    ok = verify_password(user.password_hash if user else _DUMMY_HASH, password)
    if not ok or user is None or not user.is_active:
        session.add(LoginAttempt(username=username[:64], remote=remote[:64]))
        session.commit()
        raise AuthError("wrong username or password")
    session.execute(delete(LoginAttempt).where(LoginAttempt.username == username))
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    session.commit()
    return user


def prompt_password() -> str:
    first = getpass.getpass("password: ")
    if first != getpass.getpass("repeat password: "):
        raise ValueError("passwords differ; type the same password twice")
    return first


_DUMMY_HASH = _hasher.hash("not-a-real-password")
