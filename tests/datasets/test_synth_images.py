"""Synthetic training images: determinism, styles (IR greyscale), label sanity, labels = visible pixels."""

from __future__ import annotations

import filecmp
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from datasets.synth.background import render_background
from datasets.synth.camera import Camera
from datasets.synth.images import STYLES, write_dataset
from datasets.synth.layout import random_layout
from datasets.synth.objects import CLASS_NAMES, sample
from datasets.synth.render import MIN_BOX_PX, Lighting, Placed, compose
from datasets.synth.scene import render_image
from vision.types import OBJECT_KINDS


def _files(root: Path) -> list[Path]:
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file() and p.name != "data.yaml")


def test_class_order_is_object_kinds() -> None:
    assert tuple(str(k) for k in OBJECT_KINDS) == CLASS_NAMES


def test_same_seed_same_bytes_whatever_the_workers(tmp_path: Path) -> None:
    a = write_dataset(tmp_path / "a", count=10, seed=5, size=(320, 180), workers=1, progress=False).parent
    b = write_dataset(tmp_path / "b", count=10, seed=5, size=(320, 180), workers=2, progress=False).parent
    assert _files(a) == _files(b)
    assert len([f for f in _files(a) if f.suffix == ".jpg"]) == 10
    for rel in _files(a):
        assert filecmp.cmp(a / rel, b / rel, shallow=False), rel


def test_other_seed_other_images(tmp_path: Path) -> None:
    a = write_dataset(tmp_path / "a", count=2, seed=1, size=(320, 180), progress=False).parent
    b = write_dataset(tmp_path / "b", count=2, seed=2, size=(320, 180), progress=False).parent
    img_a = sorted((a / "images").rglob("*.jpg"))[0].read_bytes()
    img_b = sorted((b / "images").rglob("*.jpg"))[0].read_bytes()
    assert img_a != img_b


def _is_grey(image: np.ndarray) -> bool:
    return bool((image[..., 0] == image[..., 1]).all() and (image[..., 1] == image[..., 2]).all())


def test_ir_style_is_greyscale_and_deterministic(tmp_path: Path) -> None:
    for index in range(8):  # two street views, every kind of weather the first seeds draw
        frame = render_image(6, index, 320, 180, "ir")
        assert _is_grey(frame.image), index
        assert np.array_equal(frame.image, render_image(6, index, 320, 180, "ir").image), index
        # IR changes the pixels only: same objects, same labels as the night picture of the same seed
        night = render_image(6, index, 320, 180, "night")
        assert frame.labels() == night.labels() and not np.array_equal(frame.image, night.image)
    a = write_dataset(tmp_path / "a", count=8, seed=6, size=(320, 180), progress=False, style="ir").parent
    b = write_dataset(
        tmp_path / "b", count=8, seed=6, size=(320, 180), workers=2, progress=False, style="ir"
    ).parent
    for rel in _files(a):
        assert filecmp.cmp(a / rel, b / rel, shallow=False), rel
    for jpg in (a / "images").rglob("*.jpg"):
        assert _is_grey(cv2.imread(str(jpg))), jpg  # JPEG keeps three equal channels equal
    assert json.loads((a / "manifest.json").read_text())["style"] == "ir"


@pytest.mark.parametrize("style", [None, "day", "dusk", "night"])
def test_colour_styles_are_unaffected_by_ir(style: str | None) -> None:
    first = render_image(6, 5, 320, 180, style).image
    render_image(6, 5, 320, 180, "ir")  # same street view from the per-process cache in between
    assert np.array_equal(first, render_image(6, 5, 320, 180, style).image)
    assert not _is_grey(first)


def test_unknown_style_lists_the_known_ones(tmp_path: Path) -> None:
    assert STYLES == ("day", "dusk", "night", "ir")
    with pytest.raises(ValueError, match="day, dusk, night, ir"):
        write_dataset(tmp_path / "x", count=1, seed=1, progress=False, style="thermal")


def test_data_yaml_and_labels_are_sane(tmp_path: Path) -> None:
    width, height = 480, 270
    data_yaml = write_dataset(tmp_path / "ds", count=24, seed=9, size=(width, height), progress=False)
    doc = yaml.safe_load(data_yaml.read_text())
    assert doc["path"] == str((tmp_path / "ds").resolve())
    assert (doc["train"], doc["val"]) == ("images/train", "images/val")
    assert [doc["names"][i] for i in range(8)] == [str(k) for k in OBJECT_KINDS]
    seen: set[int] = set()
    for txt in (tmp_path / "ds" / "labels").rglob("*.txt"):
        assert (tmp_path / "ds" / "images" / txt.parent.name / f"{txt.stem}.jpg").exists()
        for line in txt.read_text().splitlines():
            cls, cx, cy, w, h = line.split()
            cls_id, cx, cy, w, h = int(cls), float(cx), float(cy), float(w), float(h)
            seen.add(cls_id)
            assert 0 <= cls_id < 8
            assert w * width >= MIN_BOX_PX - 1e-6 and h * height >= MIN_BOX_PX - 1e-6, line
            assert cx - w / 2 + 1e-6 >= 0 and cx + w / 2 <= 1 + 1e-6, line
            assert cy - h / 2 + 1e-6 >= 0 and cy + h / 2 <= 1 + 1e-6, line
    assert seen == set(range(8)), f"classes missing from 24 images: {set(range(8)) - seen}"


@pytest.fixture(scope="module")
def street() -> tuple[Camera, object]:
    rng = np.random.default_rng(3)
    layout = random_layout(rng)
    camera = Camera(
        480, 270, height_m=5.0, pitch_deg=22, yaw_deg=0, hfov_deg=60, x_m=layout.x_right_curb_m + 1
    )
    return camera, render_background(camera, layout, rng)


def _bin(x_m: float, z_m: float, tag: str) -> Placed:
    params = sample("trash_bin", np.random.default_rng(1)) | {
        "variant": "wheelie",
        "height_m": 1.0,
        "width_m": 0.6,
    }
    return Placed("trash_bin", params, x_m, z_m, tag=tag)


def _car(x_m: float, z_m: float) -> Placed:
    params = sample("car", np.random.default_rng(2)) | {"view": "rear", "height_m": 1.7}
    return Placed("car", params, x_m, z_m, tag="car")


def test_label_box_is_the_visible_part(street) -> None:  # noqa: ANN001
    camera, bg = street
    light = Lighting(noise=0)
    alone = compose(camera, bg, [_bin(camera.x_m, 12.0, "bin")], light)
    (full,) = [o for o in alone.objects if o.tag == "bin"]
    assert full.class_id == CLASS_NAMES.index("trash_bin") and full.visible_fraction == pytest.approx(1.0)
    x0, y0, x1, y1 = full.box_xyxy
    # A car right in front of the bin, shifted sideways so it hides the bin's left part.
    car_x = camera.x_m - 0.9
    partly = compose(camera, bg, [_bin(camera.x_m, 12.0, "bin"), _car(car_x, 9.0)], light)
    (part,) = [o for o in partly.objects if o.tag == "bin"]
    assert 0.25 <= part.visible_fraction < 1.0
    px0, py0, px1, py1 = part.box_xyxy
    assert px0 > x0 and (px1, py0, py1) == (x1, y0, y1)
    # Straight behind the car: hidden, so no label at all.
    hidden = compose(camera, bg, [_bin(camera.x_m, 12.0, "bin"), _car(camera.x_m, 8.0)], light)
    (gone,) = [o for o in hidden.objects if o.tag == "bin"]
    assert gone.visible_fraction < 0.25 and gone.box_xyxy is None and gone.class_id is None


def test_label_is_clipped_to_the_image_or_dropped(street) -> None:  # noqa: ANN001
    camera, bg = street
    light = Lighting(noise=0)
    # Find the X where the bin's base sits on the left image border.
    from datasets.synth.render import scales_at

    xs = np.linspace(camera.x_m - 8, camera.x_m, 400)
    edge_x = next(x for x in xs if scales_at(camera, x, 10.0)[0] >= 0)
    half_out = compose(camera, bg, [_bin(edge_x, 10.0, "bin")], light)
    (o,) = half_out.objects
    assert o.box_xyxy is not None and o.box_xyxy[0] == 0 and 0.25 <= o.visible_fraction < 0.8
    far_out = compose(camera, bg, [_bin(edge_x - 3.0, 10.0, "bin")], light)
    (o,) = far_out.objects
    assert o.box_xyxy is None and o.class_id is None
    assert not far_out.labels()


def test_smoke_never_hides_what_is_behind_it(street) -> None:  # noqa: ANN001
    camera, bg = street
    smoke = sample("smoke", np.random.default_rng(4)) | {"width_m": 1.5, "height_m": 2.5, "density": 0.9}
    scene = [_bin(camera.x_m, 14.0, "bin"), Placed("smoke", smoke, camera.x_m, 11.0, tag="smoke")]
    frame = compose(camera, bg, scene, Lighting(noise=0))
    by_tag = {o.tag: o for o in frame.objects}
    assert by_tag["bin"].visible_fraction == pytest.approx(1.0)
    assert by_tag["smoke"].class_id == CLASS_NAMES.index("smoke")
