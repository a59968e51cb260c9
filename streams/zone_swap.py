"""Give a running camera pipeline a new zone set without losing what its rules remember.

The rules (``vision.rules.common``) refer to a zone by its index in ``camera.zones``, and a new zone set
re-indexes them. ``swap_zones`` moves every remembered candidate and place to the new index of its zone id:

- a zone that is unchanged or edited (same id) keeps its violations: an open one stays open with the same
  ``violation_id``. After an edit its objects are judged against the new polygon, schedule and kind from
  the next frame on; a violation whose objects are no longer in the zone closes after ``rules.grace_s``
  as usual;
- a removed zone's open violations close now (one ``closed`` event each); its pending sightings and its
  closed violations still in their re-open cooldown are forgotten;
- the rule of a kind that no zone watches any more stops (its open violations close); a kind newly
  watched starts with a fresh state that shares the camera's escalation history.

Object stationarity (dwell so far, tracker ids) is kept: a bike parked for 3 minutes in a zone whose
polygon was nudged does not start its dwell again.
"""

from __future__ import annotations

from vision.config import CameraConfig, ZoneConfig
from vision.pipeline import CameraPipeline
from vision.rules import RULES
from vision.rules.common import Place, RuleSpec, RuleState, gbt_code_for
from vision.types import ViolationEvent
from vision.zones import ZoneIndex, watched_kinds


def _closed_event(
    state: RuleState, spec: RuleSpec, zone: ZoneConfig, place: Place, ts_s: float
) -> ViolationEvent:
    return ViolationEvent(
        event="closed",
        violation_id=place.violation_id,
        camera_id=state.camera_id,
        zone_id=zone.id,
        kind=spec.kind,
        ts_s=ts_s,
        bbox_xyxy=tuple(float(v) for v in place.bbox),  # type: ignore[arg-type]
        score=float(place.score),
        gbt_code=gbt_code_for(zone, spec.kind),
        escalation=place.escalation,
        dwell_s=float(place.dwell_s),
        first_seen_s=float(place.first_seen_s),
        object_count=int(place.object_count),
        evidence_request=False,
        place_key=place.place_key,
    )


def _remap(
    state: RuleState,
    spec: RuleSpec,
    old_zones: tuple[ZoneConfig, ...],
    remap: list[int],
    ts_s: float,
    *,
    close_all: bool,
) -> list[ViolationEvent]:
    """Re-index one rule's state in place; returns ``closed`` events of violations whose zone went."""
    events: list[ViolationEvent] = []
    kept: list[Place] = []
    for place in state.places:
        new_idx = -1 if close_all else remap[place.zone_idx]
        if new_idx >= 0:
            place.zone_idx = new_idx
            kept.append(place)
            continue
        if place.status == "open":
            place.status = "closed"
            place.closed_s = ts_s
            place.dwell_s = max(0.0, place.last_present_s - place.first_seen_s)
            events.append(_closed_event(state, spec, old_zones[place.zone_idx], place, ts_s))
    state.places = kept
    for cand in state.candidates:
        cand.zone_idx = remap[cand.zone_idx] if cand.zone_idx >= 0 else -1
        # Membership was computed against the old geometry: recompute it on the next frame.
        cand.geo_of = None
        cand.geo_box = None
        cand.geo_watch = ()
        cand.geo_exempt = ()
        cand.geo_version += 1
    state.cluster_cache = None
    state.assign_cache = None
    return events


def swap_zones(pipeline: CameraPipeline, camera: CameraConfig, ts_s: float) -> list[ViolationEvent]:
    """Replace ``pipeline``'s camera (zones, time zone, schedules) by ``camera`` between two frames.

    Args:
        pipeline: the running pipeline of ``camera.id``.
        camera: the new config of the same camera.
        ts_s: stream time of the next frame (the ``closed`` events are stamped with it).

    Returns:
        ``closed`` events of the violations that were open in zones that no longer exist (or no longer
        watch their kind): hand them off like any other event.

    Example:
        >>> events = swap_zones(pipe, camera.model_copy(update={"zones": new_zones}), ts_s=120.0)
    """
    if camera.id != pipeline.camera.id:
        raise ValueError(f"swap_zones: camera '{camera.id}' given for the pipeline of '{pipeline.camera.id}'")
    old_zones = pipeline.zones.zones
    position = {z.id: j for j, z in enumerate(camera.zones)}
    remap = [position.get(z.id, -1) for z in old_zones]
    watched = {k for z in camera.zones for k in watched_kinds(z)}
    events: list[ViolationEvent] = []
    running = {}
    for module, state in pipeline._rules:  # noqa: SLF001 - the pipeline's rule states are what we re-index
        kind = module.SPEC.kind
        events += _remap(state, module.SPEC, old_zones, remap, ts_s, close_all=kind not in watched)
        if kind in watched:
            running[kind] = (module, state)
    pipeline._rules = [  # noqa: SLF001
        running.get(kind) or (module, module.init_state(camera.id, pipeline.rules, pipeline.escalation))
        for kind, module in RULES.items()
        if kind in watched
    ]
    pipeline._class_ids = sorted({c for module, _ in pipeline._rules for c in module.SPEC.class_ids})  # noqa: SLF001
    pipeline.camera = camera
    pipeline.zones = ZoneIndex(camera, live=pipeline.zones.live)
    return events
