"""``urbaneye synth ...`` commands (light: heavy imports stay inside the handlers)."""

from __future__ import annotations

import argparse
from pathlib import Path


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
    synth = sub.add_parser("synth", help="synthetic street images (YOLO dataset) and scenario videos")
    ssub = synth.add_subparsers(dest="synth_command", metavar="SUBCOMMAND")
    synth.set_defaults(func=lambda args: (synth.print_help(), 2)[1])

    images = ssub.add_parser("images", help="render a YOLO training set of synthetic street scenes")
    images.add_argument("--out", type=Path, required=True, help="dataset folder (gets data.yaml)")
    images.add_argument("--count", type=int, required=True, help="number of images")
    images.add_argument("--seed", type=int, required=True, help="same seed -> byte-identical dataset")
    images.add_argument("--val-fraction", type=float, default=0.1, help="share of street views kept for val")
    images.add_argument("--size", type=parse_size, default=(960, 540), help="WIDTHxHEIGHT (default 960x540)")
    images.add_argument("--workers", type=int, default=1, help="processes; does not change the output")
    images.add_argument("--style", choices=["day", "dusk", "night"], default=None, help="fix the time of day")
    images.set_defaults(func=cmd_images)


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
