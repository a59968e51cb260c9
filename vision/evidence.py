"""Evidence images for a violation: the clean frame, an annotated frame and a close-up crop, as JPEG bytes.

The annotated frame carries what a reviewer at the bureau needs at a glance, in Chinese: the violation
(e.g. 占道经营), how long it has lasted (持续 6分12秒), the camera, the local time, the zone outline and the
boxes. Text is drawn with PIL using the CJK font shipped in ``vision/fonts`` (a GB 2312 level-1 subset of
Noto Sans CJK SC); any string with a character outside it is drawn with a system CJK font instead.

Example:
    >>> images = render_evidence(frame, event, detections, zone_px, "人民路-01", local_time)  # doctest: +SKIP
    >>> store.put(key, images.annotated_jpg, "image/jpeg", {})                                # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from vision.types import (
    GBT_CODES,
    OBJECT_KINDS,
    VIOLATION_NAMES_ZH,
    Detections,
    ObjectKind,
    ViolationEvent,
    ViolationKind,
)

FONT_PATH = Path(__file__).resolve().parent / "fonts" / "NotoSansCJKsc-UrbanEyeSubset.otf"

#: System fonts with full CJK coverage, tried in order for text the shipped subset cannot draw.
#: (path, face index inside a collection).
FALLBACK_FONTS: tuple[tuple[str, int], ...] = (
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 2),  # index 2 = SC
    ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", 0),
    ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", 0),
    ("/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc", 2),
    ("/System/Library/Fonts/PingFang.ttc", 0),
    ("C:/Windows/Fonts/msyh.ttc", 0),
)

OBJECT_NAMES_ZH: dict[ObjectKind, str] = {
    ObjectKind.PERSON: "行人",
    ObjectKind.BICYCLE: "自行车",
    ObjectKind.E_BIKE: "电动车",
    ObjectKind.VENDING_STALL: "摊位",
    ObjectKind.GARBAGE: "垃圾",
    ObjectKind.TRASH_BIN: "垃圾桶",
    ObjectKind.GRILL: "烧烤炉",
    ObjectKind.SMOKE: "烟雾",
}

ESCALATION_NAMES_ZH = {"blue": "蓝单", "yellow": "黄单", "red": "红单"}

#: Objects that make up each violation: labelled on the annotated frame; other objects get a thin grey box.
VIOLATION_OBJECTS: dict[ViolationKind, tuple[ObjectKind, ...]] = {
    ViolationKind.STREET_VENDING: (ObjectKind.VENDING_STALL, ObjectKind.PERSON),
    ViolationKind.EXPOSED_GARBAGE: (ObjectKind.GARBAGE,),
    ViolationKind.BIKE_MISPARKING: (ObjectKind.BICYCLE, ObjectKind.E_BIKE),
    ViolationKind.OPEN_AIR_BARBECUE: (ObjectKind.GRILL, ObjectKind.SMOKE, ObjectKind.PERSON),
}

# Colours are BGR (the frame's order; PIL draws onto the BGR array as-is).
_RED = (40, 40, 230)
_ZONE = (0, 215, 255)
_GREY = (170, 170, 170)
_WHITE = (255, 255, 255)
_ESCALATION_BGR = {"blue": (200, 120, 30), "yellow": (0, 200, 240), "red": (40, 40, 220)}
_KIND_BGR: dict[ObjectKind, tuple[int, int, int]] = {
    ObjectKind.PERSON: (255, 190, 60),
    ObjectKind.BICYCLE: (80, 220, 80),
    ObjectKind.E_BIKE: (60, 180, 40),
    ObjectKind.VENDING_STALL: (0, 140, 255),
    ObjectKind.GARBAGE: (40, 100, 160),
    ObjectKind.TRASH_BIN: (160, 160, 60),
    ObjectKind.GRILL: (30, 60, 230),
    ObjectKind.SMOKE: (200, 200, 200),
}


@dataclass(frozen=True)
class EvidenceImages:
    """JPEG bytes of one piece of evidence: the untouched frame, the annotated frame and a close-up."""

    clean_jpg: bytes
    annotated_jpg: bytes
    crop_jpg: bytes


def format_duration_zh(duration_s: float) -> str:
    """A duration as reviewers read it: on the annotated frame, in the case description, as the UI shows
    it (``fmtDuration`` in ``api/static/api.js``).

    Example:
        >>> format_duration_zh(372), format_duration_zh(45), format_duration_zh(3900)
        ('6分12秒', '45秒', '1小时5分')
    """
    total = max(0, int(round(duration_s)))
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}小时{minutes}分"
    if minutes:
        return f"{minutes}分{seconds}秒"
    return f"{seconds}秒"


def render_evidence(
    frame_bgr: np.ndarray,
    event: ViolationEvent,
    detections: Detections,
    zone_polygon_px: np.ndarray | list[tuple[float, float]] | None,
    camera_name: str,
    local_time: dt.datetime | str,
    *,
    zone_name: str = "",
    jpeg_quality: int = 90,
    crop_margin: float = 0.5,
) -> EvidenceImages:
    """Encode the clean frame, an annotated copy and a crop around ``event.bbox_xyxy``.

    Args:
        frame_bgr: (h, w, 3) uint8 frame the event was seen in.
        event: the violation; its kind, dwell, escalation and bbox are drawn.
        detections: this frame's (tracked) detections, boxes in frame px.
        zone_polygon_px: (k, 2) zone outline in frame px, or None.
        camera_name: shown in the caption.
        local_time: camera local time of the frame (datetime, or preformatted text).
        zone_name: the zone's name for the caption (its id when empty).
        jpeg_quality: 1-100.
        crop_margin: the crop extends the bbox by this fraction of its size on each side.
    """
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)]
    annotated = annotate(
        frame_bgr, event, detections, zone_polygon_px, camera_name, local_time, zone_name=zone_name
    )
    crop = crop_around(frame_bgr, event.bbox_xyxy, crop_margin)
    return EvidenceImages(
        clean_jpg=_encode(frame_bgr, params),
        annotated_jpg=_encode(annotated, params),
        crop_jpg=_encode(crop, params),
    )


def crop_around(
    frame_bgr: np.ndarray,
    bbox_xyxy: tuple[float, float, float, float],
    margin: float = 0.5,
    min_side_px: int = 64,
) -> np.ndarray:
    """The part of the frame around a box, widened by ``margin`` × box size per side, clipped to the frame."""
    h, w = frame_bgr.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in bbox_xyxy)
    bw, bh = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
    half_w = max(bw * (0.5 + margin), min_side_px / 2)
    half_h = max(bh * (0.5 + margin), min_side_px / 2)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left, right = int(np.clip(round(cx - half_w), 0, w - 1)), int(np.clip(round(cx + half_w), 1, w))
    top, bottom = int(np.clip(round(cy - half_h), 0, h - 1)), int(np.clip(round(cy + half_h), 1, h))
    return frame_bgr[top : max(bottom, top + 1), left : max(right, left + 1)]


def annotate(
    frame_bgr: np.ndarray,
    event: ViolationEvent,
    detections: Detections,
    zone_polygon_px: np.ndarray | list[tuple[float, float]] | None,
    camera_name: str,
    local_time: dt.datetime | str,
    *,
    zone_name: str = "",
) -> np.ndarray:
    """A copy of the frame with zone, boxes and a Chinese caption (``caption_lines``) drawn on it (BGR uint8)."""
    if frame_bgr.ndim != 3 or frame_bgr.shape[2] != 3 or frame_bgr.dtype != np.uint8:
        raise ValueError(
            f"evidence frame must be uint8 (h, w, 3) BGR; got {frame_bgr.dtype} {frame_bgr.shape}"
        )
    img = frame_bgr.copy()
    h, w = img.shape[:2]
    scale = max(h, w) / 1280.0
    thick = max(1, round(2 * scale))

    if zone_polygon_px is not None and len(zone_polygon_px) >= 3:
        pts = np.round(np.asarray(zone_polygon_px, np.float64)).astype(np.int32).reshape(-1, 1, 2)
        fill = img.copy()
        cv2.fillPoly(fill, [pts], _ZONE, lineType=cv2.LINE_AA)
        cv2.addWeighted(fill, 0.18, img, 0.82, 0, dst=img)
        cv2.polylines(img, [pts], True, _ZONE, thick, cv2.LINE_AA)

    relevant = set(VIOLATION_OBJECTS.get(event.kind, ()))
    labels: list[tuple[str, tuple[int, int], tuple[int, int, int]]] = []
    for i in range(len(detections)):
        cid = int(detections.class_id[i])
        kind = OBJECT_KINDS[cid] if 0 <= cid < len(OBJECT_KINDS) else None  # None: an unknown object
        x1, y1, x2, y2 = (int(round(v)) for v in detections.xyxy[i])
        if kind is None or kind not in relevant:
            cv2.rectangle(img, (x1, y1), (x2, y2), _GREY, 1, cv2.LINE_AA)
            continue
        color = _KIND_BGR[kind]
        cv2.rectangle(img, (x1, y1), (x2, y2), color, thick, cv2.LINE_AA)
        tid = "" if detections.tracker_id is None else f" #{int(detections.tracker_id[i])}"
        labels.append((f"{OBJECT_NAMES_ZH[kind]}{tid} {detections.confidence[i]:.2f}", (x1, y1), color))

    vx1, vy1, vx2, vy2 = (int(round(v)) for v in event.bbox_xyxy)
    cv2.rectangle(img, (vx1, vy1), (vx2, vy2), _RED, max(2, round(4 * scale)), cv2.LINE_AA)

    # Caption banner: darken the strip first so white text reads on any scene.
    title_px = max(16, round(34 * scale))
    small_px = max(12, round(22 * scale))
    pad = max(4, round(10 * scale))
    title, line2, line3 = caption_lines(event, camera_name, local_time, zone_name)
    escalation = ESCALATION_NAMES_ZH.get(str(event.escalation), str(event.escalation))
    banner_h = min(h, pad * 4 + title_px + 2 * small_px + pad)
    img[:banner_h] = (img[:banner_h].astype(np.float32) * 0.35).astype(np.uint8)

    pil = Image.fromarray(img)  # the array stays BGR: colours below are given in BGR too
    draw = ImageDraw.Draw(pil)
    x = pad
    tag_w = _text_width(escalation, title_px) + 2 * pad
    draw.rectangle(
        [x, pad, x + tag_w, pad + title_px + pad // 2], fill=_ESCALATION_BGR.get(str(event.escalation), _RED)
    )
    _draw_text(
        draw, (x + pad, pad), escalation, title_px, _WHITE if str(event.escalation) != "yellow" else (0, 0, 0)
    )
    _draw_text(draw, (x + tag_w + pad, pad), title, title_px, _WHITE)
    y = pad * 2 + title_px
    _draw_text(draw, (x, y), line2, small_px, _WHITE)
    _draw_text(draw, (x, y + small_px + pad // 2), line3, small_px, _WHITE)

    label_px = max(12, round(18 * scale))
    for text, (lx, ly), color in labels:
        tw = _text_width(text, label_px) + 6
        top = ly - label_px - 6 if ly - label_px - 6 >= banner_h else ly
        draw.rectangle([lx, top, lx + tw, top + label_px + 6], fill=color)
        _draw_text(draw, (lx + 3, top + 1), text, label_px, (0, 0, 0))
    return np.asarray(pil).copy()


def caption_lines(
    event: ViolationEvent, camera_name: str, local_time: dt.datetime | str, zone_name: str = ""
) -> tuple[str, str, str]:
    """The three lines of the burned-in caption: violation (the event's Chinese kind name, else the
    built-in's) and dwell; camera and local time; zone (its name, the id when it has none), GB/T code and
    name, and score.

    Example:
        >>> caption_lines(event, "人民路-01", "2025-06-01 10:00:00", "人民路东口")[2]  # doctest: +SKIP
        '区域 人民路东口  编码 0102 暴露垃圾  置信度 0.91'
    """
    when = (
        local_time.strftime("%Y-%m-%d %H:%M:%S") if isinstance(local_time, dt.datetime) else str(local_time)
    )
    code = GBT_CODES.get(event.gbt_code)
    code_name = event.gbt_name or (code.name if code else "")
    kind_name = event.kind_name_zh or VIOLATION_NAMES_ZH.get(event.kind, str(event.kind))
    title = f"{kind_name}  持续 {format_duration_zh(event.dwell_s)}"
    line2 = f"{camera_name}  {when}"
    zone = zone_name or event.zone_id
    line3 = (
        f"区域 {zone}  编码 {event.gbt_code}{' ' + code_name if code_name else ''}  置信度 {event.score:.2f}"
    )
    return title, line2, line3


def render_strip_frame(
    frame_bgr: np.ndarray,
    bbox_xyxy: tuple[float, float, float, float],
    zone_polygon_px: np.ndarray | None,
    caption: str,
    *,
    jpeg_quality: int = 80,
) -> bytes:
    """One frame of the frame strip (frames across the dwell), as JPEG: the zone outline, the violation's
    box and a one-line caption (e.g. the local time), sized for a thumbnail that also opens full size.

    Args:
        frame_bgr: (h, w, 3) uint8 frame, already downscaled for the strip.
        bbox_xyxy: the violation's box in this frame's pixels.
        zone_polygon_px: (k, 2) zone outline in this frame's pixels, or None.
        caption: text drawn in the top-left corner.
    """
    img = np.ascontiguousarray(frame_bgr).copy()
    h, w = img.shape[:2]
    thick = max(1, round(max(h, w) / 400))
    if zone_polygon_px is not None and len(zone_polygon_px) >= 3:
        pts = np.round(np.asarray(zone_polygon_px, np.float64)).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(img, [pts], True, _ZONE, thick, cv2.LINE_AA)
    x1, y1, x2, y2 = (int(round(v)) for v in bbox_xyxy)
    cv2.rectangle(img, (x1, y1), (x2, y2), _RED, thick + 1, cv2.LINE_AA)
    size_px = max(12, round(h / 18))
    pad = max(2, size_px // 4)
    band = min(h, size_px + 2 * pad)
    img[:band, : min(w, _text_width(caption, size_px) + 2 * pad)] //= 3
    pil = Image.fromarray(img)
    _draw_text(ImageDraw.Draw(pil), (pad, pad), caption, size_px, _WHITE)
    return _encode(np.asarray(pil), [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])


# ---------------------------------------------------------------------------------------------- fonts


@lru_cache(maxsize=1)
def _shipped_codepoints() -> frozenset[int]:
    from fontTools.ttLib import TTFont  # fonttools comes with matplotlib; only the cmap is read

    with TTFont(str(FONT_PATH), lazy=True) as font:
        return frozenset(font.getBestCmap())


@lru_cache(maxsize=32)
def _font(size_px: int, fallback: bool = False) -> ImageFont.FreeTypeFont:
    if fallback:
        for path, index in FALLBACK_FONTS:
            if Path(path).is_file():
                return ImageFont.truetype(path, size_px, index=index)
    if not FONT_PATH.is_file():
        raise FileNotFoundError(
            f"evidence font {FONT_PATH} is missing; rebuild it with `python -m vision.fonts.build_subset`"
        )
    return ImageFont.truetype(str(FONT_PATH), size_px)


def font_for(text: str, size_px: int) -> ImageFont.FreeTypeFont:
    """The shipped font if it has every character of ``text``, else the first system CJK font found."""
    covered = _shipped_codepoints()
    needs_fallback = any(ord(c) not in covered for c in text if not c.isspace())
    return _font(size_px, fallback=needs_fallback)


def _draw_text(draw: ImageDraw.ImageDraw, xy: tuple[int, int], text: str, size_px: int, fill: tuple) -> None:
    draw.text(xy, text, font=font_for(text, size_px), fill=fill)


def _text_width(text: str, size_px: int) -> int:
    return int(round(font_for(text, size_px).getlength(text)))


def _encode(img: np.ndarray, params: list[int]) -> bytes:
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(img), params)
    if not ok:
        raise ValueError(f"JPEG encoding failed for an image of shape {img.shape}")
    return buf.tobytes()
