"""Demo cameras: scenario clips rendered on demand and looped as file sources (``urbaneye run --demo``).

``datasets/demo/cameras.yaml`` lists the demo cameras with sources ``clips/<scenario>.mp4``;
``ensure_demo_clips`` renders each ``datasets/demo/scenarios/<scenario>.yaml`` once (cached by a hash
of the scenario file, the render settings and the generator version) and writes a cameras file whose
sources point at the rendered clips.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import yaml

log = logging.getLogger(__name__)

DEMO_DIR = Path(__file__).resolve().parent
DEMO_CAMERAS = DEMO_DIR / "cameras.yaml"
DEMO_SCENARIOS = DEMO_DIR / "scenarios"
DEMO_FPS = 5.0
DEMO_SIZE = (960, 540)
DEMO_SEED = 0


def clip_hash(scenario_path: Path, fps: float = DEMO_FPS, size: tuple[int, int] = DEMO_SIZE) -> str:
    """Cache key of a demo clip: scenario bytes + render settings + generator version."""
    from datasets.synth.images import GENERATOR_VERSION

    h = hashlib.sha256(scenario_path.read_bytes())
    h.update(f"|{fps}|{size[0]}x{size[1]}|{DEMO_SEED}|{GENERATOR_VERSION}".encode())
    return h.hexdigest()[:16]


def ensure_demo_clips(
    out_dir: Path, progress: bool = False, fps: float = DEMO_FPS, size: tuple[int, int] = DEMO_SIZE
) -> Path:
    """Render missing demo clips into ``out_dir`` and return the path of a cameras file using them.

    Example:
        >>> cameras_path = ensure_demo_clips(Path("var/demo"))  # doctest: +SKIP
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = yaml.safe_load(DEMO_CAMERAS.read_text(encoding="utf-8"))
    doc = copy.deepcopy(doc)
    missing: dict[Path, Path] = {}  # clip to render -> its scenario
    for cam in doc["cameras"]:
        url = cam["source"]["url"]
        name = Path(url).stem
        scenario_path = DEMO_SCENARIOS / f"{name}.yaml"
        if not scenario_path.exists():
            raise FileNotFoundError(
                f"demo camera '{cam['id']}' uses {url} but {scenario_path} is missing; add the scenario or "
                "fix the url in datasets/demo/cameras.yaml"
            )
        clip = out_dir / f"{name}-{clip_hash(scenario_path, fps, size)}.mp4"
        if not clip.exists():
            missing[clip] = scenario_path
        cam["source"]["url"] = str(clip.resolve())
        cam["source"]["loop"] = True
    _render(missing, fps, size, progress)
    cameras_path = out_dir / "cameras.yaml"
    tmp = cameras_path.with_suffix(".yaml.tmp")
    tmp.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
    tmp.replace(cameras_path)
    return cameras_path


def _render(clips: dict[Path, Path], fps: float, size: tuple[int, int], progress: bool) -> None:
    """Render ``clip -> scenario`` pairs, one process per CPU (a fresh clone's first start waits for them)."""
    from datasets.synth.video import render_scenario

    workers = min(len(clips), os.cpu_count() or 1)
    for clip in clips:
        log.info("rendering demo clip %s", clip)
    if workers <= 1:
        for clip, scenario in clips.items():
            render_scenario(scenario, clip, seed=DEMO_SEED, fps=fps, size=size, progress=progress)
        return
    # spawn, not fork: the caller may already run threads (``urbaneye run --demo`` starts the demo hotline)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        done = [
            pool.submit(render_scenario, scenario, clip, seed=DEMO_SEED, fps=fps, size=size)
            for clip, scenario in clips.items()
        ]
        for future in done:
            future.result()  # a failed render raises here, naming its scenario
