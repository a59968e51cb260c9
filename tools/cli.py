"""Tool commands: ``eval-events`` (scenario suite scored end to end) and ``bench`` (performance targets).

Handlers import their modules inside: ``urbaneye.cli`` imports every area's ``cli.py`` to build its help,
and these load the detector, the renderer and the whole stream runtime.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tools.bench_sections import DEFAULT_SECTIONS, SECTIONS
from vision.cli import ExamplesHelpFormatter


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval-events",
        help="render scenarios, replay them with the shipped model, score the events",
        description="Render every scenario in DIR with the seed (renders cached under var/), replay them "
        "and score with vision.scoring: precision, recall, median delay, false alarms.",
        formatter_class=ExamplesHelpFormatter,
        epilog=(
            "examples:\n"
            "  urbaneye eval-events --scenarios datasets/scenarios --seed 1 --json\n"
            "  urbaneye eval-events --scenarios datasets/scenarios --seed 1 "
            "--model models/bootstrap/urbaneye-bootstrap.int8.onnx\n"
            "  urbaneye eval-events --scenarios datasets/scenarios --seed 1 --no-motion-gating --fps 10\n"
        ),
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
        description="Measure our detector against bare ONNX Runtime and ultralytics, fp32 against int8, the "
        "worker layouts, where a camera's time goes, how many 1080p and 640x360 sub-stream cameras this "
        "machine keeps in real time (searched, no fixed cap), and how much motion gating saves; with "
        "--background-load N every detector, pipeline and live-queue figure again with N busy cores.",
        epilog="examples:\n"
        "  urbaneye bench --json\n"
        "  urbaneye bench --json --background-load 1\n"
        "  urbaneye bench --sections detector --background-load 1 --quick\n"
        "  urbaneye bench --sections pipeline --pipeline-budget-s 120\n"
        "  urbaneye bench --sections live_queue --background-load 2 --json",
        formatter_class=ExamplesHelpFormatter,
    )
    p.add_argument("--model", help="ONNX detector (default: the shipped bootstrap model)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--quick", action="store_true", help="shorter runs (smoke test; numbers are noisier)")
    p.add_argument(
        "--sections",
        default=",".join(DEFAULT_SECTIONS),
        help=f"comma-separated subset of {', '.join(SECTIONS)}; static_objects, config_poll (cost of "
        "polling for camera/zone edits) and live_queue (a new case to an open review queue) run only when named",
    )
    p.add_argument(
        "--background-load",
        type=_non_negative_int,
        default=0,
        metavar="N",
        help="also measure detector, pipeline and live_queue with N busy-loop processes running (ended with "
        "the bench)",
    )
    p.add_argument(
        "--pipeline-budget-s",
        type=float,
        default=None,
        help="time for all the pipeline's ceiling searches together (default 300, 60 with --quick)",
    )
    p.set_defaults(func=_bench)


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of processes, e.g. 1") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: the number of busy processes must be 0 or more")
    return value


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
    result = run_bench(
        model_path=args.model,
        quick=args.quick,
        sections=sections,
        background_load=args.background_load,
        pipeline_budget_s=args.pipeline_budget_s,
    )
    print(json.dumps(result, ensure_ascii=False, sort_keys=True, indent=None if args.json else 2))
    return 0
