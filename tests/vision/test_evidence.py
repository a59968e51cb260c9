from __future__ import annotations

import datetime as dt
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw

from vision.evidence import (
    FALLBACK_FONTS,
    FONT_PATH,
    EvidenceImages,
    annotate,
    caption_lines,
    crop_around,
    font_for,
    format_duration_zh,
    render_evidence,
    render_strip_frame,
)
from vision.types import OBJECT_KINDS, Detections, Escalation, ObjectKind, ViolationEvent, ViolationKind

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
LOCAL = dt.datetime(2024, 5, 1, 18, 32, 10, tzinfo=dt.timezone(dt.timedelta(hours=8)))


def make_event(kind: ViolationKind = ViolationKind.STREET_VENDING, **changes) -> ViolationEvent:
    fields = dict(
        event="opened",
        violation_id="v-0001",
        camera_id="cam-01",
        zone_id="renmin-rd-n",
        kind=kind,
        ts_s=372.0,
        bbox_xyxy=(700.0, 380.0, 1000.0, 700.0),
        score=0.82,
        gbt_code="0501",
        escalation=Escalation.YELLOW,
        dwell_s=372.0,
        first_seen_s=0.0,
        evidence_request=True,
    )
    fields.update(changes)
    return ViolationEvent(**fields)


def scene_detections() -> Detections:
    k = OBJECT_KINDS.index
    return Detections(
        xyxy=[[700, 380, 1000, 700], [620, 120, 820, 720], [100, 300, 180, 420]],
        confidence=[0.82, 0.9, 0.6],
        class_id=[k(ObjectKind.VENDING_STALL), k(ObjectKind.PERSON), k(ObjectKind.GARBAGE)],
        tracker_id=[12, 7, 3],
    )


ZONE_PX = np.array([[560, 300], [1270, 300], [1270, 715], [560, 715]], np.float32)


def decode(jpg: bytes) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(jpg, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None, "not a decodable JPEG"
    return img


def test_render_evidence_returns_three_decodable_jpegs(zidane_bgr: np.ndarray) -> None:
    images = render_evidence(zidane_bgr, make_event(), scene_detections(), ZONE_PX, "人民路北口-01", LOCAL)
    assert isinstance(images, EvidenceImages)
    clean, annotated, crop = decode(images.clean_jpg), decode(images.annotated_jpg), decode(images.crop_jpg)
    assert images.clean_jpg[:2] == b"\xff\xd8"
    assert clean.shape == annotated.shape == zidane_bgr.shape
    # Clean is the frame itself (JPEG q90 error only); annotated is visibly different.
    assert np.abs(clean.astype(int) - zidane_bgr).mean() < 4
    assert np.abs(annotated.astype(int) - zidane_bgr).mean() > 10
    # Crop: bbox 300x320 widened by 0.5 on each side -> 600x640, clipped at the frame's bottom (720).
    assert crop.shape[1] == 600 and crop.shape[0] == 720 - 220
    ARTIFACTS.mkdir(exist_ok=True)
    for name, data in [("annotated", images.annotated_jpg), ("crop", images.crop_jpg)]:
        (ARTIFACTS / f"evidence_sample_{name}.jpg").write_bytes(data)


def test_caption_text_depends_on_the_violation(zidane_bgr: np.ndarray) -> None:
    det, args = scene_detections(), (ZONE_PX, "人民路北口-01", LOCAL)
    vending = annotate(zidane_bgr, make_event(), det, *args)
    barbecue = annotate(zidane_bgr, make_event(ViolationKind.OPEN_AIR_BARBECUE, gbt_code="0510"), det, *args)
    longer = annotate(zidane_bgr, make_event(dwell_s=3900.0), det, *args)
    banner = slice(0, 60), slice(100, 700)  # the title line: kind and dwell
    assert (np.abs(vending[banner].astype(int) - barbecue[banner]).max(axis=2) > 100).sum() > 200
    assert (np.abs(vending[banner].astype(int) - longer[banner]).max(axis=2) > 100).sum() > 50
    # White text pixels exist in the darkened banner.
    assert (vending[banner].min(axis=2) > 200).sum() > 300


def test_labels_only_for_objects_of_the_violation(zidane_bgr: np.ndarray) -> None:
    det = scene_detections()
    img = annotate(zidane_bgr, make_event(), det, None, "cam", "2024-05-01 18:32:10")
    # The person (relevant to vending) gets a filled label above its box; the garbage (not relevant) doesn't.
    person_label = img[100:118, 622:700]
    garbage_label = img[282:298, 102:170]
    assert np.abs(person_label.astype(int) - zidane_bgr[100:118, 622:700]).mean() > 40
    assert np.abs(garbage_label.astype(int) - zidane_bgr[282:298, 102:170]).mean() < 5


def _glyph_mask(text: str, size_px: int = 40) -> np.ndarray:
    img = Image.new("L", (size_px * (len(text) + 1), size_px * 2), 0)
    ImageDraw.Draw(img).text((4, 4), text, font=font_for(text, size_px), fill=255)
    return np.asarray(img) > 128


def test_shipped_font_draws_real_cjk_glyphs_not_boxes() -> None:
    assert FONT_PATH.is_file() and FONT_PATH.stat().st_size < 2.5e6
    chars = "占道经营持续分秒暴露垃圾非机动车乱停放露天烧烤"
    masks = [_glyph_mask(c) for c in chars]
    assert all(m.sum() > 30 for m in masks)
    # Missing glyphs would all draw the same .notdef box; real glyphs differ pairwise.
    flat = {m.tobytes() for m in masks}
    assert len(flat) == len(set(chars))
    assert font_for(chars, 20).path == str(FONT_PATH)


def test_characters_outside_the_subset_fall_back_to_a_system_font() -> None:
    rare = "鑫淼"  # GB 2312 level 2: not in the shipped subset
    if not any(Path(p).is_file() for p, _ in FALLBACK_FONTS):
        pytest.skip("no system CJK font installed (apt-get install fonts-noto-cjk)")
    font = font_for(f"商户 {rare}", 20)
    assert font.path != str(FONT_PATH)
    a, b = _glyph_mask("鑫"), _glyph_mask("淼")
    assert a.sum() > 30 and b.sum() > 30 and a.tobytes() != b.tobytes()


@pytest.mark.parametrize(
    "dwell_s, text",
    [(0, "0秒"), (45.4, "45秒"), (60, "1分0秒"), (372, "6分12秒"), (3599, "59分59秒"), (3900, "1小时5分")],
)
def test_format_duration_zh(dwell_s: float, text: str) -> None:
    assert format_duration_zh(dwell_s) == text


@pytest.mark.parametrize(
    "bbox, expected_hw",
    [
        ((100.0, 100.0, 200.0, 150.0), (100, 200)),  # widened by half the size on each side
        ((0.0, 0.0, 50.0, 50.0), (75, 75)),  # clipped at the top-left corner
        ((300.0, 200.0, 300.0, 200.0), (64, 64)),  # a degenerate box still gives a minimum-size crop
        ((630.0, 470.0, 700.0, 520.0), (35, 45)),  # partly outside the frame: clipped
    ],
)
def test_crop_around(bbox: tuple[float, float, float, float], expected_hw: tuple[int, int]) -> None:
    frame = np.zeros((480, 640, 3), np.uint8)
    assert crop_around(frame, bbox).shape[:2] == expected_hw


def test_bad_frame_is_refused() -> None:
    with pytest.raises(ValueError, match=r"uint8 \(h, w, 3\)"):
        annotate(np.zeros((10, 10), np.uint8), make_event(), Detections.empty(), None, "cam", LOCAL)


def test_caption_names_the_zone_and_falls_back_to_its_id() -> None:
    event = make_event(zone_id="renmin-rd-n", gbt_code="0501")
    assert caption_lines(event, "人民路北口-01", LOCAL, "人民路北侧")[2].startswith(
        "区域 人民路北侧  编码 0501"
    )
    assert caption_lines(event, "人民路北口-01", LOCAL)[2].startswith("区域 renmin-rd-n  编码 0501")
    assert caption_lines(event, "人民路北口-01", LOCAL)[1] == "人民路北口-01  2024-05-01 18:32:10"


def test_the_burned_in_caption_draws_the_zone_name(zidane_bgr: np.ndarray) -> None:
    det, args = scene_detections(), (ZONE_PX, "人民路北口-01", LOCAL)
    by_id = annotate(zidane_bgr, make_event(), det, *args)
    by_name = annotate(zidane_bgr, make_event(), det, *args, zone_name="人民路北侧")
    same_name = annotate(zidane_bgr, make_event(), det, *args, zone_name="人民路北侧")
    third_line = slice(75, 110), slice(0, 500)
    assert (np.abs(by_id[third_line].astype(int) - by_name[third_line]).max(axis=2) > 100).sum() > 100
    assert np.array_equal(by_name, same_name)
    rendered = render_evidence(zidane_bgr, make_event(), det, *args, zone_name="人民路北侧")
    assert np.abs(decode(rendered.annotated_jpg).astype(int) - by_name).mean() < 4


def test_unknown_objects_get_a_grey_box_not_an_error(zidane_bgr: np.ndarray) -> None:
    det = Detections(xyxy=[[100, 300, 180, 420]], confidence=[0.5], class_id=[len(OBJECT_KINDS)])
    img = annotate(zidane_bgr, make_event(), det, None, "cam", "2024-05-01 18:32:10")
    assert np.abs(img[300, 100:180].astype(int) - zidane_bgr[300, 100:180]).mean() > 5


def test_strip_frame_draws_box_zone_and_caption_at_thumbnail_size(zidane_bgr: np.ndarray) -> None:
    small = cv2.resize(zidane_bgr, (640, 360), interpolation=cv2.INTER_AREA)
    jpg = render_strip_frame(small, (350, 190, 500, 350), ZONE_PX / 2, "18:32:10  3/8")
    img = decode(jpg)
    assert img.shape == small.shape
    red = img[190:350, 349:352]  # the left edge of the violation's box is red (BGR)
    assert (red[..., 2].astype(int) - red[..., 0] > 80).mean() > 0.8
    assert (img[2:22, 4:120].min(axis=2) > 200).sum() > 30  # white caption text in the corner


def test_caption_names_a_configured_kind_and_its_code() -> None:
    event = make_event(kind="goods_display", gbt_code="0599", gbt_name="店外经营", kind_name_zh="出店经营")
    title, _, line3 = caption_lines(event, "cam", LOCAL, "人民路北侧")
    assert title == "出店经营  持续 6分12秒"
    assert line3 == "区域 人民路北侧  编码 0599 店外经营  置信度 0.82"
    assert caption_lines(make_event(), "cam", LOCAL)[0] == "占道经营  持续 6分12秒"
