"""``urbaneye synth ...`` commands (light: heavy imports stay inside the handlers)."""

from __future__ import annotations

import argparse
from pathlib import Path

from vision.cli import ExamplesHelpFormatter


def parse_size(text: str) -> tuple[int, int]:
    """``"960x540"`` -> ``(960, 540)``."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r} is not WIDTHxHEIGHT, e.g. 960x540") from None
    if w < 64 or h < 64 or w > 2047 or h > 2047:
        raise argparse.ArgumentTypeError(f"size {text!r} is out of range; use 64..2047 px per side")
    return w, h


def add_commands(sub: argparse._SubParsersAction) -> None:
    synth = sub.add_parser(
        "synth",
        help="synthetic street images (YOLO dataset) and scenario videos",
        formatter_class=ExamplesHelpFormatter,
        epilog=(
            "examples:\n"
            "  urbaneye synth images --out /work/data/synth-train --count 8000 --seed 1 --workers 2\n"
            "  urbaneye synth video --scenario datasets/scenarios/vendor_sidewalk.yaml --out runs/scn/vendor.mp4 --seed 1\n"
        ),
    )
    ssub = synth.add_subparsers(dest="synth_command", metavar="SUBCOMMAND")
    synth.set_defaults(func=lambda args: (synth.print_help(), 2)[1])

    images = ssub.add_parser(
        "images",
        help="render a YOLO training set of synthetic street scenes",
        formatter_class=ExamplesHelpFormatter,
        epilog=(
            "examples:\n"
            "  urbaneye synth images --out /work/data/synth-train --count 8000 --seed 1 --workers 2\n"
            "  urbaneye synth images --out /work/data/synth-holdout --count 500 --seed 777 --val-fraction 0\n"
            "  urbaneye synth images --out /work/data/synth-ir --count 1000 --seed 5 --style ir --size 1280x720\n"
        ),
    )
    images.add_argument("--out", type=Path, required=True, help="dataset folder (gets data.yaml)")
    images.add_argument("--count", type=int, required=True, help="number of images")
    images.add_argument("--seed", type=int, required=True, help="same seed -> byte-identical dataset")
    images.add_argument("--val-fraction", type=float, default=0.1, help="share of street views kept for val")
    images.add_argument("--size", type=parse_size, default=(960, 540), help="WIDTHxHEIGHT (default 960x540)")
    images.add_argument("--workers", type=int, default=1, help="processes; does not change the output")
    images.add_argument(
        "--style",
        choices=["day", "dusk", "night", "ir"],  # datasets.synth.images.STYLES, without importing cv2
        default=None,
        help="fix the time of day, or ir: a CCTV camera in infrared night mode (default: a day/dusk/night mix)",
    )
    images.set_defaults(func=cmd_images)
    add_video_commands(ssub)


def cmd_images(args: argparse.Namespace) -> int:
    import time

    from datasets.synth.images import write_dataset

    t0 = time.perf_counter()
    data_yaml = write_dataset(
        args.out, args.count, args.seed, args.val_fraction, args.size, max(1, args.workers), True, args.style
    )
    dt_s = time.perf_counter() - t0
    print(f"wrote {args.count} images to {data_yaml.parent} in {dt_s:.1f} s ({args.count / dt_s:.1f} img/s)")
    print(f"data.yaml: {data_yaml}")
    return 0


def add_video_commands(ssub: argparse._SubParsersAction) -> None:
    video = ssub.add_parser(
        "video",
        help="render a scenario file to MP4 + ground truth + cameras file",
        formatter_class=ExamplesHelpFormatter,
        epilog=(
            "examples:\n"
            "  urbaneye synth video --scenario datasets/scenarios/vendor_sidewalk.yaml --out runs/scn/vendor.mp4 --seed 1\n"
            "  urbaneye synth video --scenario datasets/scenarios/night_barbecue.yaml --out runs/scn/bbq.mp4 "
            "--fps 10 --size 1280x720\n"
        ),
    )
    video.add_argument("--scenario", type=Path, required=True, help="scenario YAML (see docs/scenarios.md)")
    video.add_argument(
        "--out", type=Path, required=True, help="OUT.mp4; OUT.truth.json and OUT.cameras.yaml too"
    )
    video.add_argument("--seed", type=int, default=0, help="noise and actor looks; same seed -> same truth")
    video.add_argument("--fps", type=float, default=5.0, help="frames per second (default 5)")
    video.add_argument("--size", type=parse_size, default=(960, 540), help="WIDTHxHEIGHT (default 960x540)")
    video.set_defaults(func=cmd_video)

    zones = ssub.add_parser(
        "zones",
        help="print zone polygons that match a scenario's view.zone_regions",
        formatter_class=ExamplesHelpFormatter,
        epilog="examples:\n  urbaneye synth zones --scenario datasets/scenarios/bike_in_bay.yaml\n",
    )
    zones.add_argument("--scenario", type=Path, required=True)
    zones.set_defaults(func=cmd_zones)


def cmd_video(args: argparse.Namespace) -> int:
    import time

    from datasets.synth.scenario import ScenarioError
    from datasets.synth.video import render_scenario

    t0 = time.perf_counter()
    try:
        res = render_scenario(args.scenario, args.out, args.seed, args.fps, args.size, progress=True)
    except (ScenarioError, ValueError) as exc:
        print(f"urbaneye synth video: {exc}")
        return 2
    n = len(res.truth["violations"])
    print(f"wrote {res.video_path} ({time.perf_counter() - t0:.1f} s), {n} violation(s) in {res.truth_path}")
    print(
        f"replay: urbaneye replay --cameras {res.cameras_path} --video {res.truth['camera_id']}={res.video_path}"
    )
    return 0


def cmd_zones(args: argparse.Namespace) -> int:
    import json

    from datasets.synth.scenario import (
        ScenarioError,
        build_camera,
        build_layout,
        load_scenario,
        region_polygon,
    )

    try:
        scenario, _ = load_scenario(args.scenario)
        camera, layout = build_camera(scenario.view, (960, 540)), build_layout(scenario.view)
        for zid, region in scenario.view.zone_regions.items():
            print(f"{zid}: {json.dumps(region_polygon(camera, layout, region))}")
    except ScenarioError as exc:
        print(f"urbaneye synth zones: {exc}")
        return 2
    return 0
