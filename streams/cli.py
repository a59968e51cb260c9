"""Stream commands: ``stream-worker``, ``replay`` (``eval-events`` and ``bench`` live in ``tools.cli``).

Imports of the worker, the detector and the benchmarks stay inside the handlers: ``urbaneye.cli`` imports
every area's ``cli.py`` to build its help, and each command should load only what it runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vision.cli import ExamplesHelpFormatter


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "stream-worker",
        help="stream workers only (production)",
        description="Process cameras: all of them, a static shard (--shard i/n), or a fair share claimed "
        "through leases in the database/Redis (--leases) that move to live workers when one dies.",
        formatter_class=ExamplesHelpFormatter,
        epilog=(
            "examples:\n"
            "  urbaneye stream-worker --cameras /etc/urbaneye/cameras.yaml --leases --processes 2\n"
            "  urbaneye stream-worker --cameras /etc/urbaneye/cameras.yaml --shard 0/3   # one of 3 machines\n"
            "  urbaneye stream-worker --cameras cameras.yaml --model models/bootstrap/urbaneye-bootstrap.onnx --strict\n"
        ),
    )
    p.add_argument("--cameras", type=Path, required=True, help="cameras file (YAML)")
    split = p.add_mutually_exclusive_group()
    split.add_argument("--shard", help="i/n: run the cameras of shard i of n (stable hash of the camera id)")
    split.add_argument(
        "--leases", action="store_true", help="claim cameras through leases (settings.lease_ttl_s)"
    )
    p.add_argument("--processes", type=int, default=1, help="worker processes on this machine (default 1)")
    p.add_argument("--worker-id", help="default settings.worker_id or host:pid")
    add_worker_args(p)
    p.set_defaults(func=_stream_worker)

    p = sub.add_parser(
        "replay",
        help="run the vision pipeline over video files (deterministic, no services)",
        description="Replay video files through motion gating, the detector, tracker, zones and rules, with "
        "time taken from the video; write opened/updated/closed events as JSON lines.",
        formatter_class=ExamplesHelpFormatter,
        epilog=(
            "examples:\n"
            "  urbaneye replay --cameras cameras.yaml --video cam-1=clip.mp4 --out events.jsonl\n"
            "  urbaneye replay --cameras cameras.yaml --video cam-1=a.mp4 --video cam-2=b.mp4 --out events.jsonl --stats\n"
        ),
    )
    p.add_argument("--cameras", type=Path, required=True, help="cameras file (YAML)")
    p.add_argument("--video", action="append", required=True, metavar="CAM_ID=PATH", help="repeat per camera")
    p.add_argument("--out", type=Path, required=True, help="EVENTS.jsonl to write")
    p.add_argument(
        "--model",
        help="ONNX detector (default: model.path of the cameras file, then the shipped one; that file as it is, "
        "whatever model.precision says, so a replay gives the same events on any machine: give the "
        ".int8.onnx sibling to replay what a CPU worker on precision auto runs)",
    )
    p.add_argument("--no-motion-gating", action="store_true", help="detect every sampled frame")
    p.add_argument("--stats", action="store_true", help="print per-camera replay statistics as JSON")
    p.add_argument(
        "--memory", help="false-alarm memory file (JSON), as workers load it (docs/real-cameras.md)"
    )
    p.set_defaults(func=_replay)


def add_worker_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="ONNX detector for every camera group (disables registry hot reload)")
    p.add_argument("--no-motion-gating", action="store_true", help="detect every sampled frame")
    p.add_argument(
        "--cameras-file-wins",
        action="store_true",
        help="overwrite the database's cameras and zones with the cameras file at start (default: the file "
        "only adds cameras the database does not know; edits made in the UI win)",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="exit non-zero if any camera in the file is invalid (default: start the valid ones and show "
        "the invalid ones with their error in the status)",
    )


def _worker_options(args: argparse.Namespace):  # noqa: ANN202
    from streams.leases import parse_shard
    from streams.run import WorkerOptions

    shard = parse_shard(args.shard) if getattr(args, "shard", None) else None
    return WorkerOptions(
        cameras_path=args.cameras,
        shard=shard,
        use_leases=bool(getattr(args, "leases", False)),
        model_path=args.model,
        gating=not args.no_motion_gating,
        worker_id=getattr(args, "worker_id", None),
        cameras_file_wins=args.cameras_file_wins,
        strict=args.strict,
    )


def worker_processes(args: argparse.Namespace) -> int:
    if args.processes < 1:
        raise SystemExit(f"--processes {args.processes}: give 1 or more")
    return args.processes


def _stream_worker(args: argparse.Namespace) -> int:
    from streams.run import serve_worker, supervise_processes

    try:
        options = _worker_options(args)
    except ValueError as exc:
        print(f"urbaneye stream-worker: {exc}", file=sys.stderr)
        return 2
    processes = worker_processes(args)
    return serve_worker(options) if processes == 1 else supervise_processes(options, processes)


def _load_detector(model: str | None, cameras_file):  # noqa: ANN001, ANN202
    from vision.detector import OnnxDetector

    return OnnxDetector(model or cameras_file.model.path, cameras_file.model)


def _replay(args: argparse.Namespace) -> int:
    from streams.replay import parse_video_args, replay
    from streams.sources import SourceError
    from vision.cli import InputError, read_memory_file
    from vision.config import load_cameras
    from vision.detector import ModelLoadError

    cameras_file = load_cameras(args.cameras)
    videos = parse_video_args(args.video)
    try:
        memory = read_memory_file(args.memory, [c.id for c in cameras_file.cameras]) if args.memory else None
        detector = _load_detector(args.model, cameras_file)
        stats = replay(
            cameras_file, videos, args.out, detector, gating=not args.no_motion_gating, memory=memory
        )
    except (SourceError, ModelLoadError, InputError) as exc:
        print(f"urbaneye replay: {exc}", file=sys.stderr)
        return 1
    if args.stats:
        print(json.dumps([s.to_json() for s in stats], ensure_ascii=False))
    else:
        events = sum(s.events for s in stats)
        print(f"{events} events from {len(stats)} camera(s) -> {args.out}", file=sys.stderr)
    failed = [s for s in stats if s.error]
    for s in failed:
        print(f"urbaneye replay: camera '{s.camera_id}' ({s.video}) not replayed: {s.error}", file=sys.stderr)
    return 1 if failed else 0
