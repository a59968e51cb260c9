"""Auto-written Chinese case descriptions, e.g. "人民路与滨河路口东北角发现占道经营，持续6分0秒"."""

from __future__ import annotations

from vision.evidence import format_duration_zh
from vision.kinds import kind_name_zh as catalogue_name_zh
from vision.types import Escalation, ViolationKind

_ESCALATION_ZH = {Escalation.YELLOW: "黄色", Escalation.RED: "红色"}
#: Counting word per kind; a configured kind counts its places (处).
_COUNT_UNIT = {ViolationKind.BIKE_MISPARKING: "辆"}


def kind_name_zh(kind: str, name_zh: str = "") -> str:
    """The kind's Chinese name: the one it was configured or raised with, else the built-in name, else its id.

    Example:
        >>> kind_name_zh("street_vending"), kind_name_zh("goods_display", "出店陈列"), kind_name_zh("x_y")
        ('占道经营', '出店陈列', 'x_y')
    """
    return name_zh or catalogue_name_zh(kind)


def describe_case(
    kind: str,
    address: str,
    duration_s: float,
    *,
    name_zh: str = "",
    zone_name: str = "",
    object_count: int = 1,
    escalation: str = Escalation.BLUE,
    closed: bool = False,
    unclassified: bool = False,
) -> str:
    """One sentence for the case file and the hotline. ``name_zh`` names a configured kind (``kind`` is its id);
    an unclassified (待分类) case says what it was raised as is only a suspicion.

    Example:
        >>> describe_case("street_vending", "人民路与滨河路口东北角", 360)
        '人民路与滨河路口东北角发现占道经营，持续6分0秒'
        >>> describe_case("goods_display", "人民路12号", 45, name_zh="出店陈列", unclassified=True)
        '人民路12号发现不明物体（疑似出店陈列，待分类），持续45秒'
    """
    place = address or zone_name or "监控点位"
    if zone_name and address and zone_name not in address:
        place = f"{address}（{zone_name}）"
    what = kind_name_zh(kind, name_zh)
    if unclassified:
        what = f"不明物体（疑似{what}，待分类）"
    elif object_count > 1:
        what = f"{object_count}{_COUNT_UNIT.get(kind, '处')}{what}"
    text = f"{place}发现{what}，{'共持续' if closed else '持续'}{format_duration_zh(duration_s)}"
    if escalation in _ESCALATION_ZH:
        text += f"，同一地点多次发生，已升级为{_ESCALATION_ZH[escalation]}督办"
    return text
