"""Bike mis-parking (非机动车乱停放, GB/T 0506): ``bicycle`` / ``e_bike`` stationary in a no-parking zone.

Dwell 120 s on main roads, 300 s secondary. Bikes whose centres are within 1.5 box widths of each
other form one cluster and one violation (a row of ten shared bikes is one case, not ten); bikes in
a ``bike_bay`` never count; a bike moved and re-parked restarts its dwell (new stationary episode).

An instance of the ``stationary_object`` template (``vision.kinds.BUILTIN_KINDS``).
"""

from __future__ import annotations

from vision.kinds import BUILTIN_KINDS
from vision.rules.templates import rule_spec
from vision.types import ViolationKind

SPEC = rule_spec(BUILTIN_KINDS[ViolationKind.BIKE_MISPARKING])
