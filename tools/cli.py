"""Tool commands: ``eval-events`` (scenario suite scored end to end) and ``bench`` (performance targets).

Handlers import their modules inside: ``urbaneye.cli`` imports every area's ``cli.py`` to build its help,
and these load the detector, the renderer and the whole stream runtime.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval-events",
        help="render scenarios, replay them with the shipped model, score the events",
        description="Render every scenario in DIR with the seed (renders cached under var/), replay them "
        "and score with vision.scoring: precision, recall, median delay, false alarms.",
    )
    p.add_argument("--scenarios", type=Path, required=True, help="folder of scenario files")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", help="ONNX detector (default: the shipped bootstrap model)")
    p.add_argument("--no-motion-gating", action="store_true")
    p.add_argument("--size", type=_size, default=(960, 540), help="render WIDTHxHEIGHT (default 960x540)")
    p.add_argument("--fps", type=float, default=5.0, help="render frames per second (default 5)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_eval_events)

    p = sub.add_parser(
        "bench",
        help="detector, pipeline and motion-gating benchmark",
        description="Measure our detector against bare ONNX Runtime and ultralytics, how many 1080p cameras "
        "one 2-core machine keeps up with, and how much motion gating saves.",
    )
    p.add_argument("--model", help="ONNX detector (default: the shipped bootstrap model)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--quick", action="store_true", help="shorter runs (smoke test; numbers are noisier)")
    p.add_argument(
        "--sections",
        default="detector,pipeline,motion_gating",
        help="comma-separated subset; config_poll (cost of polling for camera/zone edits) runs only when named",
    )
    p.set_defaults(func=_bench)


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not WIDTHxHEIGHT, e.g. 960x540") from None
    if not (64 <= w <= 7680 and 64 <= h <= 4320):
        raise argparse.ArgumentTypeError(f"{text!r}: width and height must be 64..7680 x 64..4320")
    return w, h


def _eval_events(args: argparse.Namespace) -> int:
    from tools.evaluate_events import eval_events

    result = eval_events(
        args.scenarios,
        args.seed,
        model_path=args.model,
        gating=not args.no_motion_gating,
        fps=args.fps,
        size=args.size,
    )
    if args.json:
        print(json.dumps(result, ensure_ascii=False, sort_keys=True))
    else:
        print(json.dumps(result, ensure_ascii=False, sort_keys=True, indent=2))
    return 0


def _bench(args: argparse.Namespace) -> int:
    from tools.bench import run_bench

    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    result = run_bench(model_path=args.model, quick=args.quick, sections=sections)
    print(json.dumps(result, ensure_ascii=False, sort_keys=True, indent=None if args.json else 2))
    return 0
