"""Auto-written Chinese case descriptions, e.g. "人民路与滨河路口东北角发现占道经营，持续6分0秒"."""

from __future__ import annotations

from vision.evidence import format_duration_zh
from vision.types import VIOLATION_NAMES_ZH, Escalation, ViolationKind

_ESCALATION_ZH = {Escalation.YELLOW: "黄色", Escalation.RED: "红色"}
_COUNT_UNIT = {
    ViolationKind.BIKE_MISPARKING: "辆",
    ViolationKind.EXPOSED_GARBAGE: "处",
    ViolationKind.STREET_VENDING: "处",
    ViolationKind.OPEN_AIR_BARBECUE: "处",
}


def describe_case(
    kind: str,
    address: str,
    duration_s: float,
    *,
    zone_name: str = "",
    object_count: int = 1,
    escalation: str = Escalation.BLUE,
    closed: bool = False,
) -> str:
    """One sentence for the case file and the hotline.

    Example:
        >>> describe_case("street_vending", "人民路与滨河路口东北角", 360)
        '人民路与滨河路口东北角发现占道经营，持续6分0秒'
    """
    vk = ViolationKind(kind)
    place = address or zone_name or "监控点位"
    if zone_name and address and zone_name not in address:
        place = f"{address}（{zone_name}）"
    what = VIOLATION_NAMES_ZH[vk]
    if object_count > 1:
        what = f"{object_count}{_COUNT_UNIT[vk]}{what}"
    text = f"{place}发现{what}，{'共持续' if closed else '持续'}{format_duration_zh(duration_s)}"
    if escalation in _ESCALATION_ZH:
        text += f"，同一地点多次发生，已升级为{_ESCALATION_ZH[escalation]}督办"
    return text
