"""The violation kinds the API knows: the built-in four, the kinds of the cameras file the deployment runs
(``URBANEYE_CAMERAS_FILE``), and any other kind found on cases (a kind configured once and removed since).

The cameras file is read with ``vision.config.load_cameras`` and cached by modification time; a file that
cannot be read leaves the built-in and case kinds (logged), it never fails the request.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.schemas.kinds import KindPublic, KindSource
from urbaneye.cases.describe import kind_name_zh
from urbaneye.db.models import Case
from vision.config import ConfigError, load_cameras
from vision.kinds import BUILTIN_KINDS, KindSpec, gbt_name_for, kind_catalogue

log = logging.getLogger(__name__)


@lru_cache(maxsize=4)
def _configured(path: Path, mtime_ns: int) -> tuple[KindSpec, ...]:  # noqa: ARG001 - mtime is the cache key
    return tuple(kind_catalogue(load_cameras(path)).values())


def configured_specs(cameras_file: Path | None) -> tuple[KindSpec, ...]:
    """Built-in and configured kinds of ``cameras_file`` (built-ins only without one, or when it is broken)."""
    if cameras_file is None:
        return tuple(BUILTIN_KINDS.values())
    try:
        return _configured(cameras_file, cameras_file.stat().st_mtime_ns)
    except (OSError, ConfigError) as exc:
        log.warning(
            "cameras file %s not read for its violation kinds (%s); built-in kinds only", cameras_file, exc
        )
        return tuple(BUILTIN_KINDS.values())


def list_kinds(session: Session, cameras_file: Path | None) -> list[KindPublic]:
    """Built-in kinds, configured kinds, then kinds only cases know, each with its case count."""
    builtin_order = [str(k) for k in BUILTIN_KINDS]
    kinds: dict[str, KindPublic] = {}
    for spec in configured_specs(cameras_file):
        kinds[spec.id] = KindPublic(
            id=spec.id,
            name_zh=spec.name_zh,
            gbt_code=spec.gbt_code,
            gbt_name=gbt_name_for(spec.gbt_code, spec),
            classes=[str(c) for c in spec.classes],
            source=KindSource.BUILTIN if spec.id in builtin_order else KindSource.CONFIGURED,
        )
    seen = select(
        Case.kind,
        func.max(Case.gbt_code),
        func.max(Case.gbt_name),
        func.max(Case.kind_name_zh),
        func.count(),
    ).group_by(Case.kind)
    for kind, code, name, name_zh, count in session.execute(seen):
        known = kinds.get(kind)
        if known is not None:
            kinds[kind] = known.model_copy(update={"case_count": count})
        else:
            kinds[kind] = KindPublic(
                id=kind,
                name_zh=kind_name_zh(kind, name_zh),
                gbt_code=code,
                gbt_name=name,
                classes=[],
                source=KindSource.CASES,
                case_count=count,
            )
    order = {KindSource.BUILTIN: 0, KindSource.CONFIGURED: 1, KindSource.CASES: 2}
    return sorted(
        kinds.values(),
        key=lambda k: (order[k.source], builtin_order.index(k.id) if k.id in builtin_order else 0, k.id),
    )
