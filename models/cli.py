"""``urbaneye train``, ``urbaneye eval``, ``urbaneye quantize`` and ``urbaneye models import|report``.

Handlers import the training stack inside them: ``urbaneye`` imports every area's cli.py to build its
help, and importing ``models.train``/``models.retrain``/``models.importer`` there would add about 1 s
(onnxruntime, the registry, the dataset builder) to every command. ``models.retrain_cli`` owns the
``models`` command and adds the actions defined here with ``add_models_actions``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

from vision.cli import ExamplesHelpFormatter

#: Where ``urbaneye eval`` writes its plots unless ``--plots`` says otherwise (relative to the working
#: directory, like the training runs): never beside the model, which may sit in the checkout.
EVAL_RUNS_DIR = Path("runs") / "eval"


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train the detector (ultralytics), export ONNX, write a model card",
        description="Train from an ultralytics model yaml (no pretrained download) or fine-tune from --init; "
        "writes NAME.pt, NAME.onnx and card.json to --out.",
        formatter_class=ExamplesHelpFormatter,
        epilog=(
            "examples:\n"
            "  urbaneye train --data /work/data/synth-train/data.yaml --out /work/data/train-cpu --recipe cpu\n"
            "  urbaneye train --data /work/data/synth-train/data.yaml --out /work/data/train-cpu-2 "
            "--init models/bootstrap/urbaneye-bootstrap.pt --time-h 0.5\n"
            "  urbaneye train --data /work/data/synth-train/data.yaml --out runs/train-gpu --recipe gpu --device 0\n"
        ),
    )
    p.add_argument(
        "--data", required=True, type=Path, help="YOLO data.yaml (urbaneye synth images writes one)"
    )
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument(
        "--recipe", default="cpu", help="recipe in models/recipes (cpu, gpu, tiny) or a .yaml path"
    )
    p.add_argument("--epochs", type=int, help="override the recipe's epochs")
    p.add_argument("--imgsz", type=int, help="override the recipe's training size in px (exports square)")
    p.add_argument(
        "--export-imgsz", type=int, nargs=2, metavar=("H", "W"), help="ONNX input size, e.g. 288 512"
    )
    p.add_argument("--model", help="architecture yaml, e.g. yolov8n.yaml or yolo11n.yaml")
    p.add_argument("--init", type=Path, help="parent .pt to fine-tune from")
    p.add_argument("--batch", type=int, help="override the recipe's batch size")
    p.add_argument("--device", help="ultralytics device: cpu, 0, cuda:0")
    p.add_argument("--time-h", type=float, help="wall-clock budget in hours (re-plans epochs to fit)")
    p.add_argument("--name", default="urbaneye", help="file stem and model name (default urbaneye)")
    p.add_argument("--version", help="model_version written to the ONNX metadata (default: the name)")
    p.add_argument("--no-eval", action="store_true", help="skip the evaluation of the ONNX on the val split")
    p.set_defaults(func=cmd_train)

    e = sub.add_parser(
        "eval",
        help="evaluate an ONNX detector on a YOLO dataset split through vision.detector",
        description="Prints mAP50, mAP50-95 and per-class AP50/precision/recall; writes a PR-curve plot and a "
        "confusion matrix image.",
        formatter_class=ExamplesHelpFormatter,
        epilog=(
            "examples:\n"
            "  urbaneye eval --model models/bootstrap/urbaneye-bootstrap.onnx "
            "--data /work/data/synth-holdout/data.yaml --split all --json\n"
            "  urbaneye eval --model /work/data/train-cpu/urbaneye.onnx --data /work/data/synth-train/data.yaml "
            "--card /work/data/train-cpu/card.json\n"
        ),
    )
    e.add_argument("--model", required=True, type=Path, help="ONNX file")
    e.add_argument("--data", required=True, type=Path, help="YOLO data.yaml")
    e.add_argument("--split", default="val", help="dataset split (default val)")
    e.add_argument("--json", action="store_true", help="print only the JSON object")
    e.add_argument(
        "--plots", type=Path, help=f"folder for the plots (default: {EVAL_RUNS_DIR}/<model stem>-<split>)"
    )
    e.add_argument(
        "--conf", type=float, help="operating score threshold for precision/recall (default: ModelConfig's)"
    )
    e.add_argument("--card", type=Path, help="also record the result in this card.json")
    e.add_argument("--record-as", default=None, help="name of the result in the card (default: the split)")
    e.set_defaults(func=cmd_eval)
    add_quantize_command(sub)


def add_quantize_command(sub: argparse._SubParsersAction) -> None:
    q = sub.add_parser(
        "quantize",
        help="int8 copy of an ONNX detector (static QDQ, per-channel), measured and gated against it",
        description="Writes OUT (default M.int8.onnx) and its card OUT.card.json. Calibration frames: --calib "
        "DIR, or --calib-from-reviews N (clean evidence of reviewed cases; synthetic scenes when fewer than "
        "32), else synthetic scenes. With --data the int8 model is measured against M on that held-out set "
        "(mAP50, per-class AP50, ms per inference at 1 thread) and gated (<= 0.5 pt mAP50, <= 1 pt per class); "
        "--register adds it to the registry as the int8 variant of an fp32 version. See docs/int8.md.",
        formatter_class=ExamplesHelpFormatter,
        epilog=(
            "examples:\n"
            "  urbaneye quantize --model models/bootstrap/urbaneye-bootstrap.onnx --data holdout/data.yaml\n"
            "  urbaneye quantize --model m.onnx --out m.int8.onnx --calib frames/ --data holdout/data.yaml\n"
            "  urbaneye quantize --model m.onnx --calib-from-reviews 100 --data holdout/data.yaml "
            "--register default-20250102-030405-abababab\n"
        ),
    )
    q.add_argument("--model", required=True, type=Path, help="fp32 ONNX detector")
    q.add_argument("--out", type=Path, help="int8 ONNX to write (default: MODEL with .int8.onnx)")
    src = q.add_mutually_exclusive_group()
    src.add_argument("--calib", type=Path, metavar="DIR", help="folder of calibration images (.jpg/.png)")
    src.add_argument(
        "--calib-from-reviews", type=int, metavar="N", help="up to N clean evidence frames of reviewed cases"
    )
    q.add_argument(
        "--frames", type=int, default=100, help="calibration frames from DIR or synthetic (default 100)"
    )
    q.add_argument("--group", help="with --calib-from-reviews: only cases of this camera group")
    q.add_argument("--data", type=Path, help="held-out YOLO data.yaml to measure fp32 vs int8 on (and gate)")
    q.add_argument("--split", default="all", help="split of --data (default: all images)")
    q.add_argument("--activations", choices=("uint8", "int8"), default="uint8", help="activation type")
    q.add_argument(
        "--method",
        choices=("minmax", "minmax_avg", "percentile", "entropy"),
        default="minmax",
        help="calibration method (default minmax; percentile and entropy need several GB)",
    )
    q.add_argument("--register", metavar="FP32_VERSION", help="register as the int8 variant of this version")
    q.add_argument("--json", action="store_true", help="print the result as JSON")
    q.set_defaults(func=cmd_quantize)


def cmd_train(args: argparse.Namespace) -> int:
    from models.train import train_model

    result = train_model(
        args.data,
        args.out,
        recipe=args.recipe,
        epochs=args.epochs,
        imgsz_px=args.imgsz,
        export_imgsz_px=tuple(args.export_imgsz) if args.export_imgsz else None,
        model=args.model,
        init_weights=args.init,
        batch=args.batch,
        device=args.device,
        time_h=args.time_h,
        name=args.name,
        version=args.version,
        evaluate=not args.no_eval,
    )
    print(f"weights: {result.pt_path}\nonnx:    {result.onnx_path}\ncard:    {result.card_path}")
    val = result.card.metrics.get("val")
    if val:
        print(json.dumps({k: val[k] for k in ("map50", "map50_95")}))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from models.evaluate import evaluate_model, record_metrics
    from urbaneye.model_card import ModelCard

    plots_dir = args.plots or EVAL_RUNS_DIR / f"{args.model.stem}-{args.split}"
    report = evaluate_model(
        args.model, args.data, args.split, plots_dir=plots_dir, operating_threshold=args.conf
    )
    if args.card:
        card = ModelCard.load(args.card)
        command = "urbaneye " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        record_metrics(
            card, args.record_as or args.split, report, data_yaml=args.data, split=args.split, command=command
        )
        card.save(args.card)
    if not args.json:
        print(f"plots: {plots_dir}", file=sys.stderr)
    print(json.dumps(report, ensure_ascii=False))
    return 0


def cmd_quantize(args: argparse.Namespace) -> int:
    from models.quantize import (
        QuantizeError,
        build_int8,
        folder_calibration,
        review_calibration,
        synthetic_calibration,
    )
    from urbaneye.db.session import session_scope
    from urbaneye.registry import RegistryError
    from urbaneye.registry_precision import int8_sibling, register_int8
    from urbaneye.storage import get_store

    out = args.out or int8_sibling(args.model)
    try:
        if args.calib:
            calib = folder_calibration(args.calib, args.frames)
        elif args.calib_from_reviews:
            with session_scope() as s:
                calib = review_calibration(s, get_store(), args.calib_from_reviews, camera_group=args.group)
        else:
            calib = synthetic_calibration(args.frames)
        with _stdout_to_stderr():
            build = build_int8(
                args.model, out, calib=calib, data_yaml=args.data, split=args.split,
                activation_type=args.activations, method=args.method,
                command="urbaneye " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
            )  # fmt: skip
        registered = None
        if args.register:
            with session_scope() as s:
                registered = register_int8(
                    s, onnx_path=out, fp32_version=args.register, card=build.card, actor="cli:admin"
                ).version
    except (QuantizeError, RegistryError, FileNotFoundError) as exc:
        print(f"urbaneye quantize: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({**build.to_json(), "registered": registered}, ensure_ascii=False))
        return 0
    r, c = build.result, build.comparison
    print(
        f"int8 model  {r.dst} ({r.size_bytes / 1e6:.1f} MB, {len(r.float_nodes)} float nodes, {r.quantize_s:.0f} s)"
    )
    print(f"calibration {r.calibration.source}: {r.calibration.count} frames, {r.calibration.detail}")
    print(f"card        {build.card_path}")
    if c is not None:
        print(
            f"mAP50       fp32 {c.fp32['map50']:.4f}  int8 {c.int8['map50']:.4f}  ({c.map50_delta * 100:+.2f} pt)"
        )
        print(
            f"speed       fp32 {c.fp32_ms:.1f} ms  int8 {c.int8_ms:.1f} ms  x{c.int8_over_fp32:.2f} (1 thread)"
        )
        print(f"gate        {c.gate.reason}")
    if registered:
        print(f"registered  {registered}")
    return 0


def add_models_actions(msub: argparse._SubParsersAction) -> None:
    """``models import`` and ``models report`` under the ``models`` command."""
    im = msub.add_parser(
        "import",
        help="register a detector trained elsewhere (.onnx, or .pt with the train extra); --activate uses it",
        description="Validates the file (a YOLO detection model), applies a class map, writes a model card, "
        "registers it as NAME and, with --activate, makes it the camera group's active model: running "
        "stream workers hot-reload it.",
        formatter_class=ExamplesHelpFormatter,
        epilog=(
            "examples:\n"
            "  urbaneye models import best.onnx --name street-v2\n"
            "  urbaneye models import best.onnx --name street-v2 --class-map class_map.yaml --group district-a --activate\n"
        ),
    )
    im.add_argument("path", type=Path, help="the .onnx (or ultralytics .pt) file")
    im.add_argument("--name", required=True, help="registry version name, e.g. coco-yolov8n")
    im.add_argument(
        "--class-map",
        help="'coco' (the 80 COCO labels: person, bicycle, motorcycle -> e_bike, the rest ignored) or a "
        "YAML file of 'label: kind' lines (null ignores a label); default: labels that are object kinds",
    )
    im.add_argument("--group", default="default", help="camera group (default: default)")
    im.add_argument("--activate", action="store_true", help="make it the group's active model now")
    im.add_argument("--json", action="store_true", help="print the result as JSON")
    im.set_defaults(func=cmd_models_import)

    rp = msub.add_parser(
        "report",
        help="how reviewers judged a model's cases, per kind and per camera (real-world precision)",
        formatter_class=ExamplesHelpFormatter,
        epilog=(
            "examples:\n"
            "  urbaneye models report --name bootstrap-3abb1cd1bd0c\n"
            "  urbaneye models report --name coco-yolov8n --json\n"
        ),
    )
    rp.add_argument("--name", required=True, help="registry version, e.g. bootstrap-3abb1cd1bd0c")
    rp.add_argument("--json", action="store_true", help="print the report as JSON")
    rp.set_defaults(func=cmd_models_report)


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Send file descriptor 1 to stderr for a while: ultralytics' export logs to stdout through handlers
    that hold the stream, and ``--json`` output must be the only thing on stdout."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def cmd_models_import(args: argparse.Namespace) -> int:
    from models.importer import ModelImportError, import_model
    from urbaneye.db.session import session_scope
    from urbaneye.registry import RegistryError

    try:
        with _stdout_to_stderr(), session_scope() as s:
            result = import_model(
                s,
                args.path,
                name=args.name,
                class_map=args.class_map,
                camera_group=args.group,
                activate=args.activate,
                actor="cli:admin",
            )
    except (ModelImportError, RegistryError) as exc:
        print(f"urbaneye models import: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result.to_json(), ensure_ascii=False))
        return 0
    h, w = result.imgsz_px
    print(f"registered  {result.version} (group {result.camera_group}, sha256 {result.sha256[:12]}, {h}x{w})")
    print(f"kinds       {', '.join(result.kinds)} from {len(result.labels)} labels")
    print(f"card        {result.card_uri}")
    print(f"active      {'yes: running workers reload it' if result.activated else 'no (candidate)'}")
    return 0


def cmd_models_report(args: argparse.Namespace) -> int:
    from urbaneye import registry
    from urbaneye.db.session import session_scope
    from urbaneye.model_report import model_report

    try:
        with session_scope() as s:
            registry.ensure_bootstrap(s)
            report = model_report(s, args.name).to_json()
    except registry.RegistryError as exc:
        print(f"urbaneye models report: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report, ensure_ascii=False))
        return 0
    print(
        f"{'CAMERA':<20} {'KIND':<20} {'CASES':>6} {'OK':>5} {'REJ':>5} {'PEND':>5} {'PRECISION':>9}  REASONS"
    )
    rows = [("(all)", "(all)", report["total"])]
    rows += [("(all)", kind, v) for kind, v in report["kinds"].items()]
    for camera, c in report["cameras"].items():
        rows += [(camera, kind, v) for kind, v in c["kinds"].items()]
    for camera, kind, v in rows:
        precision = "-" if v["precision"] is None else f"{v['precision']:.2f}"
        reasons = ", ".join(f"{r} {n}" for r, n in v["reasons"].items())
        print(
            f"{camera:<20} {kind:<20} {v['cases']:>6} {v['confirmed']:>5} {v['rejected']:>5} "
            f"{v['pending']:>5} {precision:>9}  {reasons}"
        )
    return 0
