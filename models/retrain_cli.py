"""Commands of the retraining loop: ``dataset build``, ``retrain``, ``models list|promote|rollback|shadow``.

Handlers import the training stack inside them, as in ``models.cli``: ``urbaneye`` imports every
area's cli.py for its help, and the training stack (onnxruntime, the registry, the dataset builder) would
add about 1 s to every command.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from models.cli import add_models_actions
from vision.cli import ExamplesHelpFormatter


def add_commands(sub: argparse._SubParsersAction) -> None:
    _add_dataset(sub)

    r = sub.add_parser(
        "retrain",
        help="fine-tune the active model on reviewed cases, gate it, maybe promote it",
        formatter_class=ExamplesHelpFormatter,
        epilog=(
            "examples:\n"
            "  urbaneye retrain --group default --json\n"
            "  urbaneye retrain --group night --time-h 1.5 --no-promote --work-dir runs/retrain-night\n"
            "  urbaneye retrain --dataset ds-20250102-030405-cdcdcdcd --recipe gpu --device 0\n"
        ),
    )
    r.add_argument("--group", default="default", help="camera group (default: default)")
    r.add_argument(
        "--dataset", dest="dataset_version", help="use this dataset version instead of building one"
    )
    r.add_argument(
        "--recipe",
        default="finetune",
        help="training recipe in models/recipes (default finetune; a from-scratch cpu/gpu/tiny gets lr0 x 0.25)",
    )
    r.add_argument(
        "--epochs", type=int, help="train exactly this many epochs (instead of the recipe's time budget)"
    )
    r.add_argument("--time-h", type=float, help="wall-clock training budget in hours (re-plans the epochs)")
    r.add_argument("--imgsz", type=int, help="override the recipe's training size (px)")
    r.add_argument("--batch", type=int)
    r.add_argument("--device", help="ultralytics device: cpu, 0, ...")
    r.add_argument(
        "--synth-share", type=float, default=0.5, help="synthetic fraction of the train split (default 0.5)"
    )
    r.add_argument(
        "--regression-data", type=Path, help="YOLO data.yaml of the regression set (default: synthetic)"
    )
    r.add_argument("--no-promote", action="store_true", help="record the gate decision but never promote")
    r.add_argument("--work-dir", type=Path, help="keep the dataset and training run here")
    r.add_argument("--json", action="store_true", help="print the result as JSON")
    r.set_defaults(func=cmd_retrain)

    m = sub.add_parser(
        "models",
        help="model registry: list, import, report, promote, rollback, shadow",
        formatter_class=ExamplesHelpFormatter,
        epilog=(
            "examples:\n"
            "  urbaneye models list\n"
            "  urbaneye models import yolov8n.onnx --name coco-yolov8n --class-map coco --activate\n"
            "  urbaneye models report --name coco-yolov8n\n"
            "  urbaneye models rollback\n"
        ),
    )
    msub = m.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    ls = msub.add_parser(
        "list",
        help="registered model versions, newest first",
        formatter_class=ExamplesHelpFormatter,
        epilog="examples:\n  urbaneye models list\n  urbaneye models list --group night --json\n",
    )
    ls.add_argument("--group", help="only this camera group")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.set_defaults(func=cmd_models_list)
    pr = msub.add_parser(
        "promote",
        help="make a version the active model of a camera group",
        formatter_class=ExamplesHelpFormatter,
        epilog=(
            "examples:\n"
            "  urbaneye models promote default-20250102-030405-abababab\n"
            "  urbaneye models promote coco-yolov8n --group night --force   # gate failed; audited\n"
        ),
    )
    pr.add_argument("version")
    pr.add_argument("--group", help="camera group (default: the version's own)")
    pr.add_argument("--force", action="store_true", help="promote although its gate failed (admin; audited)")
    pr.set_defaults(func=cmd_models_promote)
    rb = msub.add_parser(
        "rollback",
        help="re-activate the model that was active before the current one",
        formatter_class=ExamplesHelpFormatter,
        epilog="examples:\n  urbaneye models rollback\n  urbaneye models rollback --group night\n",
    )
    rb.add_argument("--group", default="default")
    rb.set_defaults(func=cmd_models_rollback)
    sh = msub.add_parser(
        "shadow",
        help="run a candidate beside the active model on some cameras",
        formatter_class=ExamplesHelpFormatter,
        epilog=(
            "examples:\n"
            "  urbaneye models shadow default-20250102-030405-abababab --cameras cam-1,cam-2\n"
            "  urbaneye models shadow --stop --group default\n"
        ),
    )
    sh.add_argument("version", nargs="?", help="version to shadow; omit with --stop")
    sh.add_argument("--group", default="default")
    sh.add_argument("--cameras", default="", help="comma-separated camera ids")
    sh.add_argument("--stop", action="store_true", help="stop the group's shadow")
    sh.set_defaults(func=cmd_models_shadow)
    add_models_actions(msub)


def _add_dataset(sub: argparse._SubParsersAction) -> None:
    dataset = sub.add_parser(
        "dataset",
        help="datasets built from reviewed cases",
        formatter_class=ExamplesHelpFormatter,
        epilog="examples:\n  urbaneye dataset build --out /work/data/reviewed-ds --json\n",
    )
    dsub = dataset.add_subparsers(dest="dataset_command", metavar="ACTION", required=True)
    b = dsub.add_parser(
        "build",
        help="build a versioned YOLO dataset from reviewed cases (+ synthetic share)",
        formatter_class=ExamplesHelpFormatter,
        epilog=(
            "examples:\n"
            "  urbaneye dataset build --json\n"
            "  urbaneye dataset build --group night --since 2026-11-01T00:00:00Z --synth-share 0.3 "
            "--out /work/data/night-ds\n"
        ),
    )
    b.add_argument("--group", help="only cameras of this camera group")
    b.add_argument("--since", help="only cases reviewed at/after this ISO date-time")
    b.add_argument("--max-cases", type=int)
    b.add_argument("--val-fraction", type=float, default=0.25)
    b.add_argument(
        "--synth-share", type=float, default=0.5, help="synthetic fraction of the train split (default 0.5)"
    )
    b.add_argument("--synth-seed", type=int, default=0)
    b.add_argument("--pseudo-conf", type=float, default=0.6, help="min confidence of pseudo-labels")
    b.add_argument("--no-pseudo", action="store_true", help="label only the reviewed boxes")
    b.add_argument("--out", type=Path, help="also write the YOLO folder here")
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=cmd_dataset_build)


class _Bar:
    """A tqdm bar fed by ``(stage, done, total)`` callbacks."""

    def __init__(self, desc: str) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=1, desc=desc, unit="step", file=sys.stderr)

    def __call__(self, stage: str, done: int, total: int) -> None:
        self.bar.total = max(total, 1)
        self.bar.n = done
        self.bar.set_postfix_str(stage)
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def cmd_dataset_build(args: argparse.Namespace) -> int:
    import datetime as dt

    from datasets.builder import BuildOptions, DatasetError, build_dataset
    from urbaneye import registry
    from urbaneye.db.session import session_scope
    from urbaneye.settings import get_settings
    from vision.config import ModelConfig
    from vision.detector import OnnxDetector

    options = BuildOptions(
        camera_group=args.group,
        since=dt.datetime.fromisoformat(args.since) if args.since else None,
        max_cases=args.max_cases,
        val_fraction=args.val_fraction,
        synth_share=args.synth_share,
        synth_seed=args.synth_seed,
        pseudo_conf=args.pseudo_conf,
    )
    bar = _Bar("dataset build")
    try:
        with session_scope() as s:
            detector = None
            active = registry.active_version(s, args.group or "default")
            if not args.no_pseudo:
                path = (
                    registry.fetch_onnx(active.onnx_uri, active.sha256, get_settings())
                    if active
                    else get_settings().model_path
                )
                detector = OnnxDetector(path, ModelConfig(default_score_threshold=0.25))
            result = build_dataset(s, options=options, detector=detector, out_dir=args.out, progress=bar)
    except DatasetError as exc:
        print(f"urbaneye dataset build: {exc}", file=sys.stderr)
        return 1
    finally:
        bar.close()
    out = {
        "version": result.version,
        "manifest_uri": result.manifest_uri,
        "sha256": result.sha256,
        "counts": result.counts,
    }
    if result.data_yaml:
        out["data_yaml"] = str(result.data_yaml)
    print(json.dumps(out, ensure_ascii=False, indent=None if args.json else 2))
    return 0


def cmd_retrain(args: argparse.Namespace) -> int:
    from datasets.builder import BuildOptions, DatasetError
    from models.retrain import RetrainError, RetrainOptions, run_retraining

    options = RetrainOptions(
        camera_group=args.group,
        dataset_version=args.dataset_version,
        build=BuildOptions(synth_share=args.synth_share),
        recipe=args.recipe,
        epochs=args.epochs,
        imgsz_px=args.imgsz,
        batch=args.batch,
        device=args.device,
        time_h=args.time_h,
        regression_data=args.regression_data,
        promote=not args.no_promote,
        work_dir=args.work_dir,
        actor="cli:retrain",
    )
    bar = _Bar(f"retrain {args.group}")
    try:
        result = run_retraining(options, progress=bar)
    except (RetrainError, DatasetError, FileNotFoundError) as exc:
        print(f"urbaneye retrain: {exc}", file=sys.stderr)
        return 1
    finally:
        bar.close()
    if args.json:
        print(json.dumps(result.to_json(), ensure_ascii=False))
    else:
        print(f"new model   {result.version} (parent {result.parent}, dataset {result.dataset_version})")
        print(f"gate        {result.gate.reason}")
        print(f"promoted    {'yes' if result.promoted else 'no (candidate)'}")
    return 0


def cmd_models_list(args: argparse.Namespace) -> int:
    from urbaneye import registry
    from urbaneye.db.session import session_scope

    with session_scope() as s:
        registry.ensure_bootstrap(s)  # the shipped model is always listed, active while nothing else is
        rows = [registry.to_json(mv) for mv in registry.list_versions(s, args.group)]
        active = {a.camera_group: a.version for a in registry.active_models(s)}
    if args.json:
        print(json.dumps({"models": rows, "active": active}, ensure_ascii=False))
        return 0
    if not rows:
        print("no models registered and the bootstrap model file is missing; see `urbaneye models import`")
        return 0
    print(f"{'VERSION':<44} {'STATUS':<9} {'GROUP':<10} {'VAL mAP50':>9} {'DATASET':<28} SHA256")
    for r in rows:
        m50 = (r["metrics"].get("val") or {}).get("map50")
        m50_text = f"{m50:.3f}" if isinstance(m50, int | float) else "-"
        print(
            f"{r['version']:<44} {r['status']:<9} {r['camera_group']:<10} {m50_text:>9} {r['dataset_version'] or '-':<28} {r['sha256'][:12]}"
        )
    return 0


def _registry_call(fn) -> int:  # noqa: ANN001
    from urbaneye.db.session import session_scope
    from urbaneye.registry import RegistryError

    try:
        with session_scope() as s:
            row = fn(s)
            print(
                json.dumps(
                    {
                        "camera_group": row.camera_group,
                        "version": row.version,
                        "shadow_version": row.shadow_version,
                        "shadow_cameras": row.shadow_cameras,
                    }
                )
            )
    except RegistryError as exc:
        print(f"urbaneye models: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_models_promote(args: argparse.Namespace) -> int:
    from urbaneye import registry

    def run(s):  # noqa: ANN001, ANN202
        registry.ensure_bootstrap(s)  # so a rollback can return to the shipped model
        return registry.promote(s, args.version, args.group, actor="cli:admin", force=args.force)

    return _registry_call(run)


def cmd_models_rollback(args: argparse.Namespace) -> int:
    from urbaneye import registry

    return _registry_call(lambda s: registry.rollback(s, args.group, actor="cli:admin"))


def cmd_models_shadow(args: argparse.Namespace) -> int:
    from urbaneye import registry

    if not args.stop and not args.version:
        print("urbaneye models shadow: give a VERSION, or --stop", file=sys.stderr)
        return 2
    cams = [c for c in args.cameras.split(",") if c]
    version = None if args.stop else args.version
    return _registry_call(lambda s: registry.set_shadow(s, args.group, version, cams, actor="cli:admin"))
