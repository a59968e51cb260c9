"""Violation kinds: built-in, configured (cameras file ``violations:``) and found on cases; for the UI's labels,
filters and the kind keys of a 待分类 case."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import ReaderUser, SessionDep, SettingsDep
from api.schemas.common import AUTH_ERRORS
from api.schemas.kinds import KindsPublic
from api.services.kinds import list_kinds

router = APIRouter(prefix="/kinds", tags=["kinds"], responses=AUTH_ERRORS)


@router.get("", response_model=KindsPublic)
def get_kinds(session: SessionDep, settings: SettingsDep, _: ReaderUser) -> KindsPublic:
    """Every violation kind with its GB/T code and Chinese name, object classes and case count: the built-in
    four first, then the cameras file's configured kinds (``URBANEYE_CAMERAS_FILE``), then kinds only cases
    know."""
    kinds = list_kinds(session, settings.cameras_file)
    return KindsPublic(data=kinds, count=len(kinds))
