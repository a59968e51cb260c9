"""Users, password hashing (argon2), JWT access/service tokens and login throttling.

Access tokens are short-lived (``settings.access_token_ttl_s``); service tokens for stream and Celery
workers are long-lived but tied to a ``service`` user. Every request re-reads the user row, so a
deactivated user, a bumped ``token_version`` (password change or reset, logout) or a role that no longer
matches the token's kind revokes a token at once.

Logins are throttled per (username, client address) and per client address: a try is claimed (counted)
atomically before the password is checked, and after the free failures each further try waits
exponentially longer (never a hard lock, and another address is not affected).
"""

from __future__ import annotations

import datetime as dt
import getpass
import math
from dataclasses import dataclass
from enum import StrEnum
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import case, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from urbaneye.db.models import LoginThrottle, Role, User, utcnow
from urbaneye.settings import Settings, get_settings

_hasher = PasswordHasher()
JWT_ALGORITHM = "HS256"
SERVICE_TOKEN_MAX_TTL_S = 366 * 86400
#: First wait after the free failures; it doubles with each further failure up to ``login_lockout_s``.
LOGIN_BASE_DELAY_S = 1.0

#: Demo accounts (``urbaneye run --demo``); documented in the README, never created in production.
DEMO_USERS: tuple[tuple[str, str, Role, str], ...] = (
    ("admin", "admin-demo", Role.ADMIN, "演示管理员"),
    ("demo", "demo-review", Role.REVIEWER, "演示审核员"),
)


class TokenKind(StrEnum):
    ACCESS = "access"  # a person's session, from a password login
    SERVICE = "service"  # a worker's long-lived token; only ever acts as the service role


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


class DemoUsersRefused(ValueError):
    """Demo accounts were asked for in production."""


def refuse_demo_users_in_production(settings: Settings) -> None:
    """Raise ``DemoUsersRefused`` when ``settings`` is production: demo passwords are public."""
    if settings.environment == "production":
        raise DemoUsersRefused(
            "demo users (admin/admin-demo) are never created in production; drop --demo/--demo-users and "
            "create real accounts with: urbaneye users create --username NAME --role admin"
        )


def ensure_demo_users(session: Session, settings: Settings | None = None) -> list[User]:
    """Create the demo admin ``admin``/``admin-demo`` and reviewer ``demo``/``demo-review`` if missing.

    Refused (``DemoUsersRefused``) in production."""
    refuse_demo_users_in_production(settings or get_settings())
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


@dataclass(frozen=True)
class TokenClaims:
    """What a verified token says; the user row decides whether it still holds (``user_for_claims``)."""

    user_id: str
    kind: TokenKind
    version: int


def issue_token(
    user: User, settings: Settings, kind: str = "access", ttl_s: int | None = None
) -> IssuedToken:
    """Sign a JWT for ``user``. ``kind='service'`` requires a service user and allows a long ttl."""
    kind = TokenKind(kind)
    if kind is TokenKind.SERVICE:
        if user.role != Role.SERVICE.value:
            raise ValueError(
                f"user '{user.username}' has role {user.role}; service tokens need role 'service'"
            )
        ttl_s = min(ttl_s or 30 * 86400, SERVICE_TOKEN_MAX_TTL_S)
    else:
        ttl_s = min(ttl_s or settings.access_token_ttl_s, settings.access_token_ttl_s)
    now = utcnow()
    expires = now + dt.timedelta(seconds=ttl_s)
    claims = {
        "sub": user.id,
        "role": user.role,
        "typ": kind.value,
        "ver": user.token_version or 0,
        "iat": now,
        "exp": expires,
    }
    return IssuedToken(jwt.encode(claims, settings.secret_key, algorithm=JWT_ALGORITHM), expires, kind.value)


def decode_token(token: str, settings: Settings) -> TokenClaims:
    """Check a token's signature, expiry and kind (no database); ``AuthError`` (401) otherwise."""
    try:
        claims = jwt.decode(
            token,
            settings.secret_key,
            algorithms=[JWT_ALGORITHM],
            options={"require": ["exp", "sub", "typ", "ver"]},
        )
        return TokenClaims(str(claims["sub"]), TokenKind(claims["typ"]), int(claims["ver"]))
    except jwt.ExpiredSignatureError:
        raise AuthError("token expired; log in again") from None
    except (jwt.InvalidTokenError, ValueError, TypeError):
        raise AuthError("invalid token; log in again") from None


def user_for_claims(session: Session, claims: TokenClaims) -> User:
    """The active user a verified token still speaks for; ``AuthError`` (401) otherwise."""
    user = session.get(User, claims.user_id)
    if user is None or not user.is_active:
        raise AuthError("user unknown or deactivated; ask an administrator")
    if claims.version != (user.token_version or 0):
        raise AuthError("token revoked (password changed or logged out); log in again")
    if claims.kind is TokenKind.SERVICE and user.role != Role.SERVICE.value:
        # a service token must never gain the powers of a role its user was later given
        raise AuthError(
            f"service token of user '{user.username}', whose role is now {user.role}; log in with a password"
        )
    return user


def user_from_token(session: Session, token: str, settings: Settings) -> User:
    """The active user a token belongs to; ``AuthError`` (401) otherwise."""
    return user_for_claims(session, decode_token(token, settings))


def revoke_tokens(user: User) -> None:
    """Invalidate every token issued to ``user`` so far (not committed)."""
    user.token_version = (user.token_version or 0) + 1


# --- login throttling ------------------------------------------------------------------------------

Network = IPv4Network | IPv6Network


def client_address(peer: str, forwarded_for: str | None, trusted_proxies: tuple[Network, ...]) -> str:
    """The address a request came from: the TCP peer, unless the peer is a trusted proxy; then the
    right-most ``X-Forwarded-For`` entry that is not itself a trusted proxy (entries further left are
    the client's own claims and may be forged).

    Example:
        >>> client_address("10.0.0.2", "203.0.113.7, 10.0.0.2", (ip_network("10.0.0.0/8"),))
        '203.0.113.7'
    """
    current = _ip(peer)
    if current is None:
        return peer or "unknown"
    if not forwarded_for:
        return str(current)
    for item in reversed(forwarded_for.split(",")):
        if not _trusted(current, trusted_proxies):
            break
        hop = _ip(item.strip())
        if hop is None:
            break  # garbage in the header: stop at the last proxy we trust
        current = hop
    return str(current)


def _ip(text: str) -> IPv4Address | IPv6Address | None:
    try:
        return ip_address(text)
    except ValueError:
        return None


def _trusted(ip: IPv4Address | IPv6Address, networks: tuple[Network, ...]) -> bool:
    return any(ip.version == n.version and ip in n for n in networks)


@dataclass(frozen=True)
class ThrottleRule:
    """``free_failures`` tries without waiting, then ``base_delay_s`` doubling per failure, capped."""

    free_failures: int
    base_delay_s: float
    max_delay_s: float

    def wait_s(self, failures: int) -> float:
        if failures < self.free_failures:
            return 0.0
        return min(self.base_delay_s * 2.0 ** min(failures - self.free_failures, 40), self.max_delay_s)


def _throttle_keys(username: str, address: str, settings: Settings) -> list[tuple[str, ThrottleRule]]:
    pair = ThrottleRule(settings.login_max_failures, LOGIN_BASE_DELAY_S, settings.login_lockout_s)
    per_address = ThrottleRule(
        settings.login_max_failures_per_address, LOGIN_BASE_DELAY_S, settings.login_lockout_s
    )
    address = address[:64]
    return sorted([(f"user:{username[:64]}|{address}", pair), (f"addr:{address}", per_address)])


def _aware(t: dt.datetime) -> dt.datetime:
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def _lock_counters(session: Session, keys: list[str], now: dt.datetime) -> dict[str, LoginThrottle]:
    """The counter rows for ``keys``, created if missing and locked until commit (rows in key order
    on PostgreSQL; SQLite's write lock, taken by the insert, serialises the whole claim)."""
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    session.execute(
        insert(LoginThrottle)
        .values([{"key": k, "failures": 0, "last_at": now} for k in keys])
        .on_conflict_do_nothing(index_elements=["key"])
    )
    rows = session.scalars(
        select(LoginThrottle)
        .where(LoginThrottle.key.in_(keys))
        .order_by(LoginThrottle.key)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).all()
    return {r.key: r for r in rows}


def claim_login_try(session: Session, username: str, address: str, settings: Settings) -> None:
    """Count one login try for (username, address) and address before the password is checked, or raise
    ``AuthError`` (429, ``retry_after_s``) if either must still wait. Commits."""
    keys = _throttle_keys(username, address, settings)
    rows = _lock_counters(session, [k for k, _ in keys], utcnow())
    now = utcnow()  # read after the lock: a try that waited for it must not look older than the last
    retry_s = 0.0
    for key, rule in keys:
        row = rows[key]
        idle_s = max(0.0, (now - _aware(row.last_at)).total_seconds())
        if idle_s > rule.wait_s(row.failures) + settings.login_lockout_s:
            row.failures = 0  # quiet long enough: forgotten
        if rule.wait_s(row.failures) > 0:
            retry_s = max(retry_s, rule.wait_s(row.failures) - idle_s)
    if retry_s > 0:
        session.commit()
        raise AuthError(
            f"too many failed logins for '{username}' from {address}; wait {math.ceil(retry_s)} s and try again",
            status=429,
            retry_after_s=max(1, math.ceil(retry_s)),
        )
    for key, _ in keys:
        rows[key].failures += 1
        rows[key].last_at = now
    session.flush()
    # forget long-quiet counters; rows another login holds are skipped, never waited for
    stale = (
        select(LoginThrottle.key)
        .where(LoginThrottle.last_at < now - dt.timedelta(seconds=2 * settings.login_lockout_s + 1))
        .with_for_update(skip_locked=True)
    )
    session.execute(
        delete(LoginThrottle).where(LoginThrottle.key.in_(stale.scalar_subquery())),
        execution_options={"synchronize_session": False},
    )
    session.commit()


def _clear_after_success(session: Session, username: str, address: str, settings: Settings) -> None:
    """The rightful user got in: forget the pair's failures and take back this try from the address."""
    (addr_key, _), (pair_key, _) = _throttle_keys(username, address, settings)
    session.execute(delete(LoginThrottle).where(LoginThrottle.key == pair_key))
    session.execute(
        update(LoginThrottle)
        .where(LoginThrottle.key == addr_key)
        .values(failures=case((LoginThrottle.failures > 0, LoginThrottle.failures - 1), else_=0))
    )


def authenticate(session: Session, username: str, password: str, remote: str, settings: Settings) -> User:
    """Check a password from client address ``remote``, throttled (see ``claim_login_try``).

    Raises ``AuthError``: 429 with ``retry_after_s`` while the (username, address) pair or the address
    must wait, 401 for a wrong password or an unknown/deactivated user.
    """
    claim_login_try(session, username, remote, settings)
    user = session.scalar(select(User).where(User.username == username))
    # end the read so the writes below start a fresh transaction (SQLite in WAL mode cannot turn a
    # read transaction into a write once another connection has written)
    session.commit()
    # hash anyway for unknown users so response time does not reveal which usernames exist
    ok = verify_password(user.password_hash if user else _DUMMY_HASH, password)
    if not ok or user is None or not user.is_active:
        raise AuthError("wrong username or password")
    _clear_after_success(session, username, remote, settings)
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
