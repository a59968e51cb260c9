"""``urbaneye run``: the main job, composed of the stream workers, the API and (with ``--demo``) the demo."""

from __future__ import annotations

import argparse
from pathlib import Path

from streams.cli import add_worker_args, worker_processes
from vision.cli import ExamplesHelpFormatter


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="the main job: stream workers + API + reviewer UI (embedded defaults)",
        description="Start stream workers for the cameras and the API + reviewer UI in one process. "
        "Without other settings: SQLite in var/, local evidence store, in-process broker.",
        formatter_class=ExamplesHelpFormatter,
        epilog=(
            "examples:\n"
            "  urbaneye run --demo                        # demo cameras, users demo/demo-review and admin/admin-demo\n"
            "  urbaneye run --cameras cameras.yaml --port 8080\n"
            "  urbaneye run --cameras cameras.yaml --processes 4 --strict\n"
            "  urbaneye run --demo --speed 4              # the demo on accelerated time (clips, demo hotline)\n"
        ),
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--cameras", type=Path, help="cameras file (YAML)")
    src.add_argument("--demo", action="store_true", help="bundled demo cameras, demo users, looping clips")
    p.add_argument("--host", help="API bind address (default settings.host)")
    p.add_argument("--port", type=int, help="API port (default settings.port)")
    p.add_argument("--processes", type=int, default=1, help="worker processes (default 1: in-process)")
    p.add_argument(
        "--speed",
        type=_speed,
        default=1.0,
        help="play file sources (the demo clips) this many times faster; with --demo the demo hotline "
        "answers as many times sooner (default 1: real time; in-process workers only)",
    )
    add_worker_args(p)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    # inside the handler: urbaneye imports every cli.py to build its help, and app.run loads the whole
    # stack (API, workers, demo renderer)
    from app.run import run_main

    return run_main(
        args.cameras,
        demo=args.demo,
        host=args.host,
        port=args.port,
        processes=worker_processes(args),
        model_path=args.model,
        gating=not args.no_motion_gating,
        cameras_file_wins=args.cameras_file_wins,
        strict=args.strict,
        speed=args.speed,
    )


def _speed(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--speed {text!r} is not a number; give e.g. 4") from None
    if not 0 < value <= 100:
        raise argparse.ArgumentTypeError(f"--speed {value} is out of range; give a number in (0, 100]")
    return value
