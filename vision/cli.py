"""``urbaneye rules-replay`` and ``urbaneye score-events``: run the rules over recorded detections and
score the events against scenario ground truth. Heavy imports stay inside the handlers.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vision.config import ConfigError, load_cameras
from vision.jsonl import JsonlError, read_jsonl
from vision.memory import MemoryBook, MemoryError_, load_memory_file
from vision.pipeline import CameraPipeline, FrameInputError, TimeOrderError, frame_from_json, label_kinds
from vision.scoring import ScoringInputError, load_events, load_truth, score_events


class ExamplesHelpFormatter(argparse.HelpFormatter):
    """``--help`` formatter of every ``urbaneye`` command: the description wraps, an ``examples:`` epilog
    keeps its lines as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith("examples:"):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "rules-replay",
        help="run zones + violation rules over per-frame detections (JSONL) and write events (JSONL)",
        description=(
            'Each input line is one frame: {"camera_id", "ts_s", "frame_wh": [w, h], "detections": '
            '[{"label", "xyxy", "score"}]}. Labels are object kinds (person, bicycle, e_bike, '
            "vending_stall, garbage, trash_bin, grill, smoke) or model labels listed in the cameras file's "
            "model.class_map. Output lines are opened/updated/closed events."
        ),
        formatter_class=ExamplesHelpFormatter,
        epilog=(
            "examples:\n"
            "  urbaneye rules-replay --cameras cameras.yaml --detections frames.jsonl --out events.jsonl\n"
            "  urbaneye rules-replay --cameras cameras.yaml --detections frames.jsonl --out events.jsonl --tracker none\n"
        ),
    )
    p.add_argument("--cameras", required=True, help="cameras/zones YAML (see docs/cameras.md)")
    p.add_argument("--detections", required=True, help="per-frame detections JSONL")
    p.add_argument("--out", required=True, help="events JSONL to write")
    p.add_argument(
        "--tracker",
        choices=["auto", "none"],
        default="auto",
        help="auto: vision.tracking.Tracker when available; none: rules match objects by position only",
    )
    p.add_argument(
        "--memory",
        help='false-alarm memory file (JSON {"entries": [...]}, see docs/real-cameras.md); without frames an '
        "entry matches by place and kind alone",
    )
    p.set_defaults(func=cmd_rules_replay)

    s = sub.add_parser(
        "score-events",
        help="precision / recall / delay of events against scenario truth JSON",
        description="Match opened violations to truth violations by camera, kind, time and box IoU.",
        formatter_class=ExamplesHelpFormatter,
        epilog=(
            "examples:\n"
            "  urbaneye score-events --events runs/scn/vendor.events.jsonl --truth runs/scn/vendor.truth.json\n"
            "  urbaneye score-events --events vendor.events.jsonl --events night.events.jsonl "
            "--truth vendor.truth.json --truth night.truth.json --json\n"
        ),
    )
    s.add_argument("--events", required=True, action="append", help="events JSONL (repeatable)")
    s.add_argument(
        "--truth", required=True, action="append", help="truth JSON (repeatable, one per scenario)"
    )
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=cmd_score_events)


def _fail(command: str, message: str) -> int:
    print(f"urbaneye {command}: {message}", file=sys.stderr)
    return 2


class InputError(ValueError):
    """Bad command input; the message names the item and the fix."""


def read_memory_file(path: str, camera_ids: list[str]) -> dict:
    """``--memory FILE`` -> ``{camera_id: [MemoryEntry]}``; ``InputError`` names the problem and the fix."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read memory file {path}: {exc.strerror}; pass a JSON memory file") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"memory file {path} is not JSON ({exc.msg} at line {exc.lineno})") from None
    try:
        return load_memory_file(data, camera_ids)
    except MemoryError_ as exc:
        raise InputError(f"memory file {path}: {exc}") from None


def replay_file(
    cameras_path: str,
    detections_path: str,
    out_path: str,
    tracker: str = "auto",
    memory_path: str | None = None,
) -> dict[str, int]:
    """Run one ``CameraPipeline`` per camera over a detections JSONL; write opened/updated/closed lines.

    ``memory_path``: a false-alarm memory file; matching detections are dropped before the rules (by place
    and kind: a detections file has no pixels to compare appearance with) and counted in ``suppressed``.
    """
    cameras = load_cameras(cameras_path)
    memory = read_memory_file(memory_path, [c.id for c in cameras.cameras]) if memory_path else {}
    books: dict[str, MemoryBook] = {}
    labels = label_kinds(cameras.model.class_map)
    src = Path(detections_path)
    if not src.is_file():
        raise InputError(
            f"cannot read detections file {src}: no such file; pass per-frame detections JSONL "
            "(one {camera_id, ts_s, frame_wh, detections} object per line)"
        )
    pipelines: dict[str, CameraPipeline] = {}
    stats = {"frames": 0, "cameras": 0, "events": 0, "opened": 0, "suppressed": 0}
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    try:
        with tmp.open("w", encoding="utf-8") as fout:
            for n, record in read_jsonl(src, what="detections"):
                where = f"{src} line {n}"
                try:
                    camera_id, ts_s, frame_wh, det = frame_from_json(record, labels)
                except FrameInputError as exc:
                    raise InputError(f"{where}: {exc}") from None
                pipe = pipelines.get(camera_id)
                if pipe is None:
                    known = [c.id for c in cameras.cameras]
                    if camera_id not in known:
                        raise InputError(
                            f"{where}: camera '{camera_id}' is not in {cameras_path} (known: {known}); add it "
                            "there or fix camera_id"
                        )
                    pipe = pipelines[camera_id] = CameraPipeline(
                        cameras.camera(camera_id),
                        cameras.rules,
                        tracker="auto" if tracker == "auto" else None,
                    )
                    books[camera_id] = MemoryBook(memory.get(camera_id, []))
                if len(books[camera_id]):
                    det = books[camera_id].filter(det, None, ts_s)
                try:
                    events = pipe.step(det, ts_s, frame_wh)
                except TimeOrderError as exc:
                    raise InputError(f"{where}: {exc}; sort the file by ts_s within each camera") from None
                stats["frames"] += 1
                for event in events:
                    if event.event == "sighting":
                        continue  # internal: evidence hint for stream workers, not a violation event
                    fout.write(json.dumps(event.to_json(), ensure_ascii=False) + "\n")
                    stats["events"] += 1
                    stats["opened"] += event.event == "opened"
        tmp.replace(out)
    except JsonlError as exc:
        raise InputError(str(exc)) from None
    finally:
        tmp.unlink(missing_ok=True)
    stats["cameras"] = len(pipelines)
    stats["suppressed"] = sum(u.suppressed for book in books.values() for u in book.take_updates())
    return stats


def cmd_rules_replay(args: argparse.Namespace) -> int:
    try:
        stats = replay_file(
            args.cameras, args.detections, args.out, tracker=args.tracker, memory_path=args.memory
        )
    except (ConfigError, InputError) as exc:
        return _fail("rules-replay", str(exc))
    print(
        f"rules-replay: {stats['frames']} frames from {stats['cameras']} camera(s) -> {stats['events']} events "
        f"({stats['opened']} opened; {stats['suppressed']} suppressed by the memory) in {args.out}",
        file=sys.stderr,
    )
    return 0


def cmd_score_events(args: argparse.Namespace) -> int:
    try:
        events = [e for path in args.events for e in load_events(path)]
        truths = [load_truth(path) for path in args.truth]
        score = score_events(events, truths)
    except ScoringInputError as exc:
        return _fail("score-events", str(exc))
    if score.ignored_events:
        print(
            f"score-events: ignored {score.ignored_events} violation(s) from cameras with no truth file",
            file=sys.stderr,
        )
    if args.json:
        print(json.dumps(score.to_json(), ensure_ascii=False))
        return 0
    delay = "n/a" if score.median_delay_s is None else f"{score.median_delay_s:.1f} s"
    print(
        f"precision {score.precision:.3f}  recall {score.recall:.3f}  f1 {score.f1:.3f}  "
        f"median delay {delay}  false alarms/h {score.false_alarms_per_hour:.2f}\n"
        f"tp {score.true_positives}  fp {score.false_positives}  fn {score.false_negatives}  "
        f"must-not-alert events {score.must_not_alert_events}  over {score.hours:.2f} h"
    )
    for kind, row in score.per_kind.items():
        print(
            f"  {kind:<18} precision {row['precision']}  recall {row['recall']}  events {row['events']}  "
            f"truths {row['truths']}  median delay {row['median_delay_s']}"
        )
    return 0
