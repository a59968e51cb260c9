"""``urbaneye train`` and ``urbaneye eval``. Heavy imports (torch, ultralytics) stay inside the handlers."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train the detector (ultralytics), export ONNX, write a model card",
        description="Train from an ultralytics model yaml (no pretrained download) or fine-tune from --init; "
        "writes NAME.pt, NAME.onnx and card.json to --out.",
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
    )
    e.add_argument("--model", required=True, type=Path, help="ONNX file")
    e.add_argument("--data", required=True, type=Path, help="YOLO data.yaml")
    e.add_argument("--split", default="val", help="dataset split (default val)")
    e.add_argument("--json", action="store_true", help="print only the JSON object")
    e.add_argument("--plots", type=Path, help="folder for the plots (default: next to the model)")
    e.add_argument(
        "--conf", type=float, help="operating score threshold for precision/recall (default: ModelConfig's)"
    )
    e.add_argument("--card", type=Path, help="also record the result in this card.json")
    e.add_argument("--record-as", default=None, help="name of the result in the card (default: the split)")
    e.set_defaults(func=cmd_eval)


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
    from models.card import ModelCard
    from models.evaluate import evaluate_model, record_metrics

    plots_dir = args.plots or args.model.resolve().parent / f"{args.model.stem}-eval-{args.split}"
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
