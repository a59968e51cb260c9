"""A configured violation kind as the cameras file writes it (``violations:``), shared by the kind tests."""

from __future__ import annotations

#: 出店陈列: a vending stall outside its shop, 40 s in a monitored zone (the issue's own YAML).
GOODS_DISPLAY = {
    "id": "goods_display",
    "name_zh": "出店陈列",
    "gbt_code": "0504",
    "template": "stationary_object",
    "classes": ["vending_stall"],
    "zone_kinds": ["monitored"],
    "dwell_s": 40,
}
