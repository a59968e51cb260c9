"""Export trained ultralytics weights to the ONNX file our runtime loads (``vision.detector``).

The ONNX keeps ultralytics' metadata (``names``, ``imgsz``, ``stride``, ``task``) so the detector reads class
names and input size from the file itself, and adds UrbanEye keys (``urbaneye_name``,
``urbaneye_classes`` as a JSON list, ``model_version`` which ``OnnxDetector.version`` starts with).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_OPSET = 17


def _local_font(font: str = "Arial.ttf") -> Path | None:
    """``check_font`` without the download: the font if matplotlib already knows it, else None."""
    from matplotlib import font_manager

    name = Path(font).name
    for entry in font_manager.fontManager.ttflist:
        if Path(entry.fname).name == name and Path(entry.fname).exists():
            return Path(entry.fname)
    return None


def prepare_offline_ultralytics() -> None:
    """Make ultralytics safe on a machine without internet; call before anything imports it.

    ``YOLO_OFFLINE=1`` turns off analytics, hub calls and pip auto-updates, but ``check_det_dataset``
    still probes the Ultralytics asset server for Arial.ttf (a 3 s HEAD request per call, and a download
    if it answers). Swapping in a local-only lookup keeps every run off the network; the font is only used
    for plots, which our recipes turn off, and the annotator falls back to PIL's default font.
    """
    os.environ["YOLO_OFFLINE"] = "1"
    import ultralytics.data.utils as data_utils
    import ultralytics.utils.checks as checks
    import ultralytics.utils.plotting as plotting

    for module in (checks, data_utils, plotting):
        module.check_font = _local_font


@dataclass(frozen=True)
class OnnxExport:
    """One exported ONNX file.

    Attributes:
        path: the .onnx file.
        imgsz_px: input ``(h, w)``.
        dynamic: True if batch (and spatial) axes are dynamic.
        opset: ONNX opset used.
        simplified: True if onnxslim ran.
        classes: labels in class-id order, as written to the metadata.
    """

    path: Path
    imgsz_px: tuple[int, int]
    dynamic: bool
    opset: int
    simplified: bool
    classes: list[str]


def as_hw(imgsz_px: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    """``512 -> (512, 512)``; ``[288, 512] -> (288, 512)``."""
    if isinstance(imgsz_px, int):
        return (imgsz_px, imgsz_px)
    values = [int(v) for v in imgsz_px]
    if len(values) != 2:
        raise ValueError(f"imgsz_px must be one int or [h, w], got {imgsz_px!r}")
    return (values[0], values[1])


def export_onnx(
    pt_path: str | Path,
    out_path: str | Path,
    *,
    imgsz_px: int | tuple[int, int],
    dynamic: bool = False,
    opset: int = DEFAULT_OPSET,
    name: str | None = None,
    version: str | None = None,
) -> OnnxExport:
    """Export ``pt_path`` (ultralytics .pt) to ``out_path`` (.onnx), batch 1 unless ``dynamic``.

    Example:
        >>> export_onnx("runs/train/weights/best.pt", "out/model.onnx", imgsz_px=(288, 512))  # doctest: +SKIP
    """
    pt_path, out_path = Path(pt_path), Path(out_path)
    if not pt_path.is_file():
        raise FileNotFoundError(f"weights {pt_path} not found; train first with `urbaneye train`")
    h, w = as_hw(imgsz_px)
    if h % 32 or w % 32:
        raise ValueError(f"ONNX input {h}x{w} must be multiples of the model stride 32, e.g. 288x512")
    simplify = importlib.util.find_spec("onnxslim") is not None
    prepare_offline_ultralytics()
    import onnx
    from ultralytics import YOLO

    # Export into a scratch copy so ultralytics' side files never land next to the source weights.
    with tempfile.TemporaryDirectory(prefix="ue-export-") as tmp:
        src = Path(tmp) / "model.pt"
        shutil.copy2(pt_path, src)
        model = YOLO(str(src), task="detect")
        exported = model.export(
            format="onnx",
            imgsz=[h, w],
            opset=opset,
            simplify=simplify,
            dynamic=dynamic,
            batch=1,
            device="cpu",
            nms=False,
            verbose=False,
        )
        names = model.names
        classes = [names[i] for i in sorted(names)]
        proto = onnx.load(str(exported))
        meta = {p.key: p.value for p in proto.metadata_props}
        meta["urbaneye_classes"] = json.dumps(classes, ensure_ascii=False)
        meta["urbaneye_name"] = name or out_path.stem
        # vision.detector builds its version string from this key; ultralytics' own "version" key is
        # the ultralytics release, not ours.
        meta["model_version"] = version or name or out_path.stem
        del proto.metadata_props[:]
        for key, value in meta.items():
            prop = proto.metadata_props.add()
            prop.key, prop.value = key, value
        out_path.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(proto, str(out_path))
    log.info("exported %s (%dx%d, dynamic=%s, opset %d)", out_path, h, w, dynamic, opset)
    return OnnxExport(
        path=out_path, imgsz_px=(h, w), dynamic=dynamic, opset=opset, simplified=simplify, classes=classes
    )
