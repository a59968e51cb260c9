"""Exposed garbage (暴露垃圾, GB/T 0102): a ``garbage`` object persisting outside bin areas.

A bag carried by a walker moves with them and never settles; a bag *held* by someone standing
still (its box mostly inside a person's box and off the ground) does not count either, and its
dwell starts only once it has been put down. ``bin_area`` zones exempt garbage inside them, and a
``garbage`` box that is a detected ``trash_bin``'s box again is the bin itself, labelled twice.
Piles next to each other (centres within 1.5 box widths) are one place.

An instance of the ``stationary_object`` template (``vision.kinds.BUILTIN_KINDS``: ``not_held``,
``not_same_box_as: [trash_bin]``).
"""

from __future__ import annotations

import numpy as np

from vision.kinds import BUILTIN_KINDS
from vision.rules.context import HELD_LIFT, HELD_OVERLAP, SAME_BOX_IOU, held_by_person, same_box
from vision.rules.templates import rule_spec
from vision.types import ViolationKind

#: A garbage box this similar to a trash_bin box is the bin, labelled twice by the detector.
BIN_IOU = SAME_BOX_IOU

__all__ = ["BIN_IOU", "HELD_LIFT", "HELD_OVERLAP", "SPEC", "held_by_person", "is_a_bin"]


def is_a_bin(garbage: np.ndarray, bins: np.ndarray) -> np.ndarray:
    """(n,) bool: the garbage box is a detected bin's box again (IoU >= BIN_IOU), i.e. the detector
    labelled one bin both ways. A pile beside a bin overlaps it far less."""
    return same_box(garbage, bins)


SPEC = rule_spec(BUILTIN_KINDS[ViolationKind.EXPOSED_GARBAGE])
