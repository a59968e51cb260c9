"""Train the UrbanEye detector with ultralytics, export it to ONNX and write its model card.

One call, ``train_model(...)``, does the whole job so ``urbaneye train`` and the retraining pipeline share it:

    recipe (models/recipes/<name>.yaml) -> ultralytics train (from the model yaml, or fine-tuned from
    ``init_weights``) -> best .pt -> ONNX (batch 1, optionally a dynamic-batch twin) -> evaluation through
    ``vision.detector`` on the val split -> card.json

Everything runs offline: no pretrained download, no AMP check weights, no font download, no analytics.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from models.data_yaml import describe_dataset
from models.evaluate import evaluate_model, record_metrics
from models.export import as_hw, export_onnx, prepare_offline_ultralytics
from urbaneye.model_card import ArtifactInfo, ModelCard, describe_hardware

log = logging.getLogger(__name__)

RECIPES_DIR = Path(__file__).resolve().parent / "recipes"

#: Recipe keys we interpret ourselves; everything under ``ultralytics:`` goes to ``YOLO.train`` verbatim.
_RECIPE_KEYS = {
    "name",
    "description",
    "model",
    "imgsz",
    "export_imgsz",
    "epochs",
    "batch",
    "device",
    "torch_threads",
    "dynamic_variant",
    "seed",
    "epoch_images",
    "finetune",
    "measured",
    "ultralytics",
}

#: Overrides no recipe may change: they keep training offline and reproducible.
_FORCED_TRAIN_ARGS: dict[str, Any] = {"amp": False, "plots": False, "exist_ok": True, "verbose": True}


@dataclass(frozen=True)
class Recipe:
    """A named, versioned set of training settings (one yaml file in ``models/recipes/``).

    Attributes:
        name: recipe name, e.g. ``"cpu"``.
        model: ultralytics architecture yaml, e.g. ``"yolov8n.yaml"``.
        imgsz_px: square training size.
        export_imgsz_px: ONNX input ``(h, w)``; 16:9 streams waste less compute at e.g. ``(288, 512)``.
        epochs: epochs to train.
        batch: batch size.
        device: ultralytics device string (``"cpu"``, ``"0"``).
        torch_threads: CPU threads for torch; None leaves ultralytics' default.
        dynamic_variant: also export a dynamic-batch ONNX.
        seed: training seed.
        epoch_images: images per epoch, drawn at random from the whole train split each epoch; None =
            every image once. Short epochs give a slow CPU a fine-grained LR schedule and time budget.
        finetune: written to continue from a trained model (``init_weights``): retraining uses its learning
            rate and warm-up as they are instead of scaling a from-scratch recipe down.
        ultralytics: extra ``YOLO.train`` keyword arguments (augmentation, lr, close_mosaic, ...).
        description: what the recipe is for and what it was measured to cost.
    """

    name: str
    model: str
    imgsz_px: int
    export_imgsz_px: tuple[int, int]
    epochs: int
    batch: int
    device: str = "cpu"
    torch_threads: int | None = None
    dynamic_variant: bool = False
    seed: int = 0
    epoch_images: int | None = None
    finetune: bool = False
    ultralytics: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    measured: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model": self.model,
            "imgsz": self.imgsz_px,
            "export_imgsz": list(self.export_imgsz_px),
            "epochs": self.epochs,
            "batch": self.batch,
            "device": self.device,
            "torch_threads": self.torch_threads,
            "dynamic_variant": self.dynamic_variant,
            "seed": self.seed,
            "epoch_images": self.epoch_images,
            "finetune": self.finetune,
            "ultralytics": dict(self.ultralytics),
            "description": self.description,
        }

    def train_args(self) -> dict[str, Any]:
        """Keyword arguments for ``YOLO.train`` (without data/project/name)."""
        args = dict(self.ultralytics)
        args.update(
            imgsz=self.imgsz_px,
            epochs=self.epochs,
            batch=self.batch,
            device=self.device,
            seed=self.seed,
        )
        args.update(_FORCED_TRAIN_ARGS)
        return args


def available_recipes() -> list[str]:
    return sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))


def load_recipe(name_or_path: str | Path) -> Recipe:
    """Load ``models/recipes/<name>.yaml`` or a recipe file path.

    Example:
        >>> load_recipe("tiny").model
        'yolov8n.yaml'
    """
    path = Path(name_or_path)
    if not path.suffix:
        path = RECIPES_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise FileNotFoundError(
            f"training recipe {name_or_path!r} not found; use one of {available_recipes()} or a .yaml path"
        )
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    unknown = set(raw) - _RECIPE_KEYS
    if unknown:
        raise ValueError(
            f"recipe {path}: unknown key(s) {sorted(unknown)}; put ultralytics arguments under 'ultralytics:'"
        )
    missing = {"model", "imgsz", "epochs", "batch"} - set(raw)
    if missing:
        raise ValueError(f"recipe {path}: missing key(s) {sorted(missing)}")
    forced = set(raw.get("ultralytics") or {}) & (set(_FORCED_TRAIN_ARGS) | {"pretrained"})
    if forced:
        raise ValueError(f"recipe {path}: {sorted(forced)} are fixed by urbaneye train (offline, no plots)")
    imgsz = int(raw["imgsz"])
    return Recipe(
        name=str(raw.get("name", path.stem)),
        model=str(raw["model"]),
        imgsz_px=imgsz,
        export_imgsz_px=as_hw(raw.get("export_imgsz", imgsz)),
        epochs=int(raw["epochs"]),
        batch=int(raw["batch"]),
        device=str(raw.get("device", "cpu")),
        torch_threads=raw.get("torch_threads"),
        dynamic_variant=bool(raw.get("dynamic_variant", False)),
        seed=int(raw.get("seed", 0)),
        epoch_images=int(raw["epoch_images"]) if raw.get("epoch_images") else None,
        finetune=bool(raw.get("finetune", False)),
        ultralytics=dict(raw.get("ultralytics") or {}),
        description=str(raw.get("description", "")).strip(),
        measured=dict(raw.get("measured") or {}),
    )


# --------------------------------------------------------------------------- training


@dataclass(frozen=True)
class TrainResult:
    """What ``train_model`` produced: weights, ONNX, and the card (already saved as ``card_path``)."""

    pt_path: Path
    onnx_path: Path
    card: ModelCard
    card_path: Path
    onnx_dynamic_path: Path | None = None
    run_dir: Path | None = None


def _thread_callback(threads: int):
    def set_threads(_trainer: Any) -> None:
        import torch

        # ultralytics resets torch to (cpu_count - 1) threads in select_device; on a 2-core box that is 1.
        torch.set_num_threads(threads)

    return set_threads


def _sampled_trainer(epoch_images: int) -> type:
    """A DetectionTrainer whose epoch is ``epoch_images`` images drawn afresh from the train split.

    Ultralytics re-plans a time-bounded run only at epoch ends and steps the LR once per epoch; with 4000
    images and a shared 2-core CPU one full epoch can outlast the whole budget, so we shorten the epoch
    without shrinking the data (a different random subset every epoch).
    """
    import torch
    from torch.utils.data import RandomSampler
    from ultralytics.data.build import InfiniteDataLoader
    from ultralytics.models.yolo.detect import DetectionTrainer

    class SampledEpochTrainer(DetectionTrainer):
        def get_dataloader(self, dataset_path: str, batch_size: int = 16, rank: int = 0, mode: str = "train"):
            loader = super().get_dataloader(dataset_path, batch_size, rank, mode)
            if mode != "train" or rank not in (-1, 0) or epoch_images >= len(loader.dataset):
                return loader
            generator = torch.Generator()
            generator.manual_seed(int(self.args.seed))
            sampler = RandomSampler(loader.dataset, num_samples=epoch_images, generator=generator)
            if hasattr(loader, "close"):  # with workers > 0 this stops the pool we are replacing
                loader.close()
            return InfiniteDataLoader(
                dataset=loader.dataset,
                batch_size=loader.batch_size,
                shuffle=False,
                sampler=sampler,
                num_workers=loader.num_workers,
                collate_fn=loader.collate_fn,
                worker_init_fn=loader.worker_init_fn,
                generator=generator,
            )

    return SampledEpochTrainer


def train_model(
    data_yaml: str | Path,
    out_dir: str | Path,
    *,
    recipe: str | Path | Recipe = "cpu",
    epochs: int | None = None,
    imgsz_px: int | None = None,
    export_imgsz_px: int | tuple[int, int] | None = None,
    model: str | None = None,
    init_weights: str | Path | None = None,
    batch: int | None = None,
    device: str | None = None,
    time_h: float | None = None,
    name: str = "urbaneye",
    version: str | None = None,
    evaluate: bool = True,
    eval_split: str = "val",
    extra_train_args: dict[str, Any] | None = None,
) -> TrainResult:
    """Train, export and card one detector; returns where everything went.

    Args:
        data_yaml: YOLO dataset (``urbaneye synth images`` writes one); class names in ``OBJECT_KINDS`` order.
        out_dir: receives ``<name>.pt``, ``<name>.onnx`` (batch 1), ``<name>-dynamic.onnx`` if the recipe
            asks, ``card.json``, and the ultralytics run folder ``run/``.
        recipe: recipe name in ``models/recipes`` (``cpu``, ``gpu``, ``tiny``; ``finetune`` with
            ``init_weights``), a yaml path, or a Recipe.
        epochs, imgsz_px, export_imgsz_px, model, batch, device: override the recipe.
        init_weights: parent ``.pt`` to fine-tune from (matching layers are copied); None trains from scratch.
        time_h: wall-clock budget in hours; ultralytics re-plans epochs to fit it after the first epoch.
        name, version: written to the ONNX metadata (``model_version``) and the card.
        evaluate: measure the ONNX through ``vision.detector`` on ``eval_split`` and put it in the card.
        extra_train_args: more ``YOLO.train`` arguments (e.g. ``{"fraction": 0.1}``).

    Example:
        >>> result = train_model("/work/data/synth/data.yaml", "out", recipe="tiny")  # doctest: +SKIP
        >>> result.card.metrics["val"]["map50"]  # doctest: +SKIP
    """
    rec = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    data_yaml = Path(data_yaml).resolve()
    dataset = describe_dataset(data_yaml)

    args = rec.train_args()
    if epochs is not None:
        args["epochs"] = int(epochs)
    if imgsz_px is not None:
        args["imgsz"] = int(imgsz_px)
    if batch is not None:
        args["batch"] = int(batch)
    if device is not None:
        args["device"] = str(device)
    if time_h is not None:
        args["time"] = float(time_h)
    args.update(extra_train_args or {})
    arch = model or rec.model
    export_hw = as_hw(export_imgsz_px) if export_imgsz_px is not None else None
    if export_hw is None:
        # A size override without an export size exports square at that size; else the recipe's export size.
        export_hw = as_hw(args["imgsz"]) if imgsz_px is not None else rec.export_imgsz_px

    prepare_offline_ultralytics()
    import torch
    from ultralytics import YOLO

    threads = rec.torch_threads
    if threads:
        torch.set_num_threads(int(threads))
    yolo = YOLO(arch, task="detect")
    if init_weights is not None:
        init_weights = Path(init_weights)
        if not init_weights.is_file():
            raise FileNotFoundError(
                f"init weights {init_weights} not found; pass a .pt written by urbaneye train"
            )
        yolo.load(str(init_weights))
        args["pretrained"] = True  # = start from the weights just loaded, nothing is downloaded
    else:
        args["pretrained"] = False
    if threads:
        for event in ("on_pretrain_routine_start", "on_train_start"):
            yolo.add_callback(event, _thread_callback(int(threads)))

    run_dir = out_dir / "run"
    log.info("training %s on %s with recipe %s: %s", arch, data_yaml, rec.name, args)
    t0 = time.monotonic()
    trainer_cls = _sampled_trainer(rec.epoch_images) if rec.epoch_images else None
    yolo.train(data=str(data_yaml), project=str(out_dir), name="run", trainer=trainer_cls, **args)
    train_time_s = time.monotonic() - t0
    trainer = yolo.trainer
    best = Path(trainer.best) if Path(trainer.best).is_file() else Path(trainer.last)
    epochs_done = int(getattr(trainer, "epoch", args["epochs"] - 1)) + 1
    hardware = describe_hardware(str(trainer.device))
    hardware["torch_threads"] = int(threads) if threads else hardware.get("torch_threads")

    pt_path = out_dir / f"{name}.pt"
    shutil.copy2(best, pt_path)
    onnx_path = out_dir / f"{name}.onnx"
    exp = export_onnx(pt_path, onnx_path, imgsz_px=export_hw, name=name, version=version)
    dyn_path = None
    if rec.dynamic_variant:
        dyn_path = out_dir / f"{name}-dynamic.onnx"
        export_onnx(pt_path, dyn_path, imgsz_px=export_hw, dynamic=True, name=name, version=version)

    recipe_dict = rec.to_dict()
    recipe_dict["train_args"] = {k: v for k, v in args.items() if k not in {"project", "name"}}
    card = ModelCard(
        name=name,
        classes=exp.classes,
        imgsz_px=list(exp.imgsz_px),
        architecture=arch,
        dataset=dataset,
        recipe=recipe_dict,
        training={
            "time_s": round(train_time_s, 1),
            "epochs": epochs_done,
            "train_imgsz_px": args["imgsz"],
            "images_per_epoch": len(trainer.train_loader.sampler),
            "hardware": hardware,
            "ultralytics_val": _ultralytics_metrics(trainer),
        },
        init_weights=str(init_weights) if init_weights else None,
    )
    card.artifacts["onnx"] = ArtifactInfo.of(onnx_path, out_dir, opset=exp.opset, dynamic=False)
    card.artifacts["pt"] = ArtifactInfo.of(pt_path, out_dir)
    if dyn_path:
        card.artifacts["onnx_dynamic"] = ArtifactInfo.of(dyn_path, out_dir, opset=exp.opset, dynamic=True)
    card_path = card.save(out_dir / "card.json")

    if evaluate:
        report = evaluate_model(onnx_path, data_yaml, eval_split, plots_dir=out_dir / "plots")
        record_metrics(card, eval_split, report, data_yaml=data_yaml, split=eval_split)
        card.save(card_path)
    log.info("trained %s in %.0f s; card %s", onnx_path, train_time_s, card_path)
    return TrainResult(
        pt_path=pt_path,
        onnx_path=onnx_path,
        card=card,
        card_path=card_path,
        onnx_dynamic_path=dyn_path,
        run_dir=run_dir,
    )


def _ultralytics_metrics(trainer: Any) -> dict[str, float]:
    """Ultralytics' own final val figures (its inference path), kept for comparison with ours."""
    metrics = getattr(trainer, "metrics", None) or {}
    keep = {
        "metrics/precision(B)": "precision",
        "metrics/recall(B)": "recall",
        "metrics/mAP50(B)": "map50",
        "metrics/mAP50-95(B)": "map50_95",
    }
    return {short: round(float(metrics[k]), 4) for k, short in keep.items() if k in metrics}
