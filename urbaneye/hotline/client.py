"""HTTP client of the hotline intake (数字城管 / 12345) and the shared-bike operator's intake."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx

from urbaneye.hotline.signing import IDEMPOTENCY_HEADER, signed_headers


class HotlineTransientError(Exception):
    """Worth retrying: time-out, connection failure, 5xx, 429."""


class HotlineRejected(Exception):
    """The intake refused the case (4xx): retrying the same body will not help."""


@dataclass(frozen=True)
class DeliveryResult:
    status_code: int
    ref: str  # the intake's own reference number, if it returns one


class HotlineClient:
    def __init__(self, url: str, secret: str, timeout_s: float = 10.0) -> None:
        if not url:
            raise ValueError("hotline URL is empty; set URBANEYE_HOTLINE_URL (or URBANEYE_BIKE_OPERATOR_URL)")
        self.url = url
        self.secret = secret
        self.timeout_s = timeout_s

    def deliver(
        self, case_id: str, payload: dict[str, Any], idempotency_key: str | None = None
    ) -> DeliveryResult:
        """POST the signed body. ``Idempotency-Key`` = ``idempotency_key`` (default: the case id, for the
        case itself), so a repeat is recognised by the intake."""
        body = json.dumps(payload, ensure_ascii=False, sort_keys=True).encode()
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            IDEMPOTENCY_HEADER: idempotency_key or case_id,
            **signed_headers(self.secret, body),
        }
        try:
            resp = httpx.post(self.url, content=body, headers=headers, timeout=self.timeout_s)
        except httpx.HTTPError as exc:  # time-outs, refused connections, protocol errors
            raise HotlineTransientError(f"{type(exc).__name__}: {exc}") from exc
        if resp.status_code >= 500 or resp.status_code in (408, 429):
            raise HotlineTransientError(f"HTTP {resp.status_code}: {resp.text[:200]}")
        if resp.status_code >= 400 and resp.status_code != 409:  # 409 = already have it (idempotent)
            raise HotlineRejected(f"HTTP {resp.status_code}: {resp.text[:500]}")
        ref = ""
        try:
            data = resp.json()
            if isinstance(data, dict):
                ref = str(data.get("ref") or data.get("id") or "")
        except ValueError:
            pass
        return DeliveryResult(resp.status_code, ref[:64])
