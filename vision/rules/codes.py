"""GB/T 30428.2 case codes of violations (城市管理部件和事件分类编码)."""

from __future__ import annotations

from vision.config import ZoneConfig
from vision.types import DEFAULT_GBT_CODE, ViolationKind


def gbt_code_for(zone: ZoneConfig, kind: ViolationKind) -> str:
    """GB/T 30428.2 code: vending is 0504 (店外经营) at a frontage, else the zone override or 0501."""
    if kind == ViolationKind.STREET_VENDING:
        if zone.gbt_code:
            return zone.gbt_code
        if zone.frontage_id:
            return "0504"
    return DEFAULT_GBT_CODE[kind]
