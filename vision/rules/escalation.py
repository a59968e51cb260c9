"""三色单 escalation: offences counted per place, a place being a zone's frontage or a cell of the frame.

A repeat offender's case is yellow, then red; the count runs over a sliding window (30 days by default)
and is seeded from the database, so it survives restarts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from vision.config import RulesConfig, ZoneConfig
from vision.types import Escalation, ViolationKind

#: Escalation places without a frontage are cells of this fraction of the frame.
ESCALATION_CELL = 0.1


class EscalationBook:
    """Offence times per place key, for 三色单 escalation. Seed it from the database.

    Args:
        history: ``place_key -> offence start times`` in the same clock as ``ts_s`` (epoch seconds
            live). Keys look like ``"cam-1/z1/street_vending/frontage-A12"`` or
            ``".../cell-3-7"`` (see ``place_key``).
        window_s: offences older than this are forgotten.

    Example:
        >>> book = EscalationBook({"cam-1/z1/street_vending/frontage-A": [100.0]}, window_s=86400)
        >>> book.count("cam-1/z1/street_vending/frontage-A", now_s=200.0)
        1
    """

    def __init__(
        self, history: Mapping[str, Iterable[float]] | None = None, window_s: float = 30 * 86400
    ) -> None:
        self.window_s = float(window_s)
        self._times: dict[str, list[float]] = {
            k: sorted(float(t) for t in v) for k, v in (history or {}).items()
        }

    def _neighbours(self, key: str) -> list[str]:
        head, _, last = key.rpartition("/")
        if not last.startswith("cell-"):
            return [key]
        try:
            gx, gy = (int(v) for v in last[5:].split("-"))
        except ValueError:
            return [key]
        # an object on a cell border must not escape escalation by jitter
        return [f"{head}/cell-{gx + dx}-{gy + dy}" for dx in (-1, 0, 1) for dy in (-1, 0, 1)]

    def count(self, key: str, now_s: float) -> int:
        """Offences at ``key`` (and neighbouring cells) within the window before ``now_s``."""
        since = now_s - self.window_s
        return sum(
            sum(1 for t in self._times.get(k, ()) if since <= t <= now_s) for k in self._neighbours(key)
        )

    def record(self, key: str, ts_s: float) -> None:
        since = ts_s - self.window_s
        times = [t for t in self._times.get(key, ()) if t >= since]
        times.append(float(ts_s))
        self._times[key] = times

    def snapshot(self) -> dict[str, list[float]]:
        return {k: list(v) for k, v in self._times.items() if v}


def escalation_level(count: int, rules: RulesConfig) -> Escalation:
    """``count`` offences (including this one) -> blue / yellow / red."""
    if count >= rules.escalation_red_at:
        return Escalation.RED
    if count >= rules.escalation_yellow_at:
        return Escalation.YELLOW
    return Escalation.BLUE


def place_key(
    camera_id: str,
    zone: ZoneConfig,
    kind: ViolationKind,
    bbox: tuple[float, float, float, float],
    frame_wh: tuple[int, int],
) -> str:
    """Stable key of a place for escalation: the zone's frontage, else a 10 x 10 cell of the frame."""
    if zone.frontage_id:
        return f"{camera_id}/{zone.id}/{kind}/frontage-{zone.frontage_id}"
    cx = (bbox[0] + bbox[2]) / 2 / max(1, frame_wh[0])
    cy = (bbox[1] + bbox[3]) / 2 / max(1, frame_wh[1])
    cells = round(1 / ESCALATION_CELL)
    gx = min(cells - 1, max(0, int(cx / ESCALATION_CELL)))
    gy = min(cells - 1, max(0, int(cy / ESCALATION_CELL)))
    return f"{camera_id}/{zone.id}/{kind}/cell-{gx}-{gy}"
