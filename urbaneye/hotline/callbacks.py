"""Status callbacks from the hotline (受理/派遣/处置/核查/结案), verified and applied to the case.

Body (JSON, UTF-8): ``{"case_id": "...", "status": "受理", "ref": "12345-2024-000123", "note": "", "at": ISO}``;
``status`` may also be the English name (accepted, dispatched, handled, verified, closed). Headers:
``X-UrbanEye-Timestamp`` and ``X-UrbanEye-Signature`` (see ``urbaneye.hotline.signing``).
"""

from __future__ import annotations

import json
import logging

from sqlalchemy.orm import Session

from urbaneye.cases.service import HOTLINE_PROGRESS, CaseStateError, get_case, transition
from urbaneye.db.models import Case, CaseStatus
from urbaneye.hotline.signing import SignatureError, verify
from urbaneye.rechecks import on_hotline_status
from urbaneye.settings import Settings, get_settings

log = logging.getLogger(__name__)

CALLBACK_STATUSES: dict[str, CaseStatus] = {
    "受理": CaseStatus.ACCEPTED,
    "派遣": CaseStatus.DISPATCHED,
    "处置": CaseStatus.HANDLED,
    "核查": CaseStatus.VERIFIED,
    "结案": CaseStatus.CLOSED,
    **{
        s.value: s
        for s in (
            CaseStatus.ACCEPTED,
            CaseStatus.DISPATCHED,
            CaseStatus.HANDLED,
            CaseStatus.VERIFIED,
            CaseStatus.CLOSED,
        )
    },
}


def apply_hotline_callback(
    session: Session,
    payload: bytes,
    signature: str | None,
    timestamp: str | None,
    settings: Settings | None = None,
) -> Case:
    """Verify and apply one callback; the caller commits. Repeats and out-of-date callbacks change nothing.

    派遣/处置 also write a camera re-check request (``urbaneye.rechecks``) in the same transaction.

    ``settings`` are the caller's (the API passes its app's); default: the environment's.
    Raises ``SignatureError`` (answer 401), ``CaseNotFound`` (404), ``CaseStateError``/``ValueError`` (422).
    """
    s = settings or get_settings()
    if not s.hotline_secret:
        # an empty key would let anyone sign: refuse every callback until a secret is set
        raise SignatureError(
            "hotline callbacks are refused: URBANEYE_HOTLINE_SECRET is empty; set the shared secret"
        )
    verify(s.hotline_secret, payload, signature, timestamp, s.hotline_callback_tolerance_s)
    try:
        body = json.loads(payload.decode("utf-8"))
        case_id = str(body["case_id"])
        raw_status = str(body["status"])
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"callback body must be JSON with case_id and status: {exc}") from None
    target = CALLBACK_STATUSES.get(raw_status)
    if target is None:
        raise ValueError(f"callback status {raw_status!r} is not one of {sorted(CALLBACK_STATUSES)}")
    case = get_case(session, case_id, for_update=True)
    current = CaseStatus(case.status)
    if current == CaseStatus.DEAD_LETTER:
        pass  # the intake has it after all: its progress wins
    elif current not in HOTLINE_PROGRESS:
        raise CaseStateError(f"case {case_id} is {current.value}; it was never pushed to the hotline")
    elif HOTLINE_PROGRESS.index(target) <= HOTLINE_PROGRESS.index(current):
        log.info("callback %s for case %s ignored: case is already %s", raw_status, case_id, current.value)
        return case
    if body.get("ref"):
        case.hotline_ref = str(body["ref"])[:64]
    transition(
        session,
        case,
        target,
        "hotline",
        {
            "callback": raw_status,
            "ref": body.get("ref", ""),
            "note": body.get("note", ""),
            "at": body.get("at"),
        },
    )
    on_hotline_status(session, case, target)
    return case
