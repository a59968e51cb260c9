"""HMAC-SHA256 request signing shared by our pushes and the hotline's callbacks.

The signature covers ``f"{timestamp}."`` + the raw body, so a captured request cannot be replayed later
with a new timestamp, and the body cannot be changed.
"""

from __future__ import annotations

import hashlib
import hmac
import time

TIMESTAMP_HEADER = "X-UrbanEye-Timestamp"
SIGNATURE_HEADER = "X-UrbanEye-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"


class SignatureError(ValueError):
    """A callback's signature or timestamp is missing, wrong or too old (answer 401)."""


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256 over ``"{timestamp}." + body``.

    Example:
        >>> sign("s3cret", 1700000000, b'{"a":1}')[:7]
        'sha256='
    """
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def signed_headers(secret: str, body: bytes, now: float | None = None) -> dict[str, str]:
    ts = str(int(time.time() if now is None else now))
    return {TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: sign(secret, ts, body)}


def verify(
    secret: str, body: bytes, signature: str | None, timestamp: str | int | None, tolerance_s: int = 300
) -> None:
    """Raise ``SignatureError`` unless the signature matches and the timestamp is within tolerance."""
    if not signature or timestamp in (None, ""):
        raise SignatureError(f"missing {SIGNATURE_HEADER} or {TIMESTAMP_HEADER} header")
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        raise SignatureError(f"{TIMESTAMP_HEADER} {timestamp!r} is not unix seconds") from None
    if abs(time.time() - ts) > tolerance_s:
        raise SignatureError(f"{TIMESTAMP_HEADER} {ts} is more than {tolerance_s}s from now; check clocks")
    if not hmac.compare_digest(sign(secret, ts, body), signature):
        raise SignatureError(f"{SIGNATURE_HEADER} does not match the body; check the shared secret")
