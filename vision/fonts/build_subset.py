"""Rebuild ``NotoSansCJKsc-UrbanEyeSubset.otf`` from the system Noto Sans CJK collection.

The shipped font covers what evidence captions need and nothing more, to stay small (< 2.5 MB):
ASCII, Latin-1 punctuation, general punctuation, CJK symbols and punctuation, full-width forms and the
3,755 level-1 hanzi of GB 2312 (the most common characters), plus every character in UrbanEye's own
Chinese strings. Source: Debian's ``fonts-noto-cjk`` (SIL OFL 1.1, see OFL.txt beside this file).

Usage:
    .venv/bin/pip install fonttools
    .venv/bin/python -m vision.fonts.build_subset [--source /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc]
"""

from __future__ import annotations

import argparse
from pathlib import Path

SOURCE = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
OUTPUT = Path(__file__).resolve().parent / "NotoSansCJKsc-UrbanEyeSubset.otf"
FAMILY = "Noto Sans CJK SC UrbanEye Subset"

#: Characters our own captions use that must never fall back, whatever GB 2312 covers.
EXTRA_TEXT = "持续分秒小时天摄像头占道经营暴露垃圾非机动车乱停放露天烧烤无照游商店外城管违规证据时间地点置信度升级蓝黄红色"


def gb2312_level1() -> str:
    """The 3,755 level-1 hanzi of GB 2312 (rows 16-55), in code order."""
    chars = []
    for row in range(0xB0, 0xD8):
        for col in range(0xA1, 0xFF):
            try:
                chars.append(bytes([row, col]).decode("gb2312"))
            except UnicodeDecodeError:
                continue  # row 55 ends at 0xF9
    return "".join(chars)


def wanted_codepoints() -> set[int]:
    ranges = [
        (0x20, 0x7E),  # ASCII
        (0xA0, 0xFF),  # Latin-1: °, ·, ×
        (0x2010, 0x206F),  # general punctuation: — ‘ ’ “ ” …
        (0x2190, 0x2193),  # arrows
        (0x3000, 0x303F),  # CJK symbols and punctuation: 、。「」【】
        (0xFF01, 0xFF5E),  # full-width forms: ，：（）
        (0xFFE0, 0xFFE6),  # full-width signs: ￥
    ]
    points = {cp for lo, hi in ranges for cp in range(lo, hi + 1)}
    points |= {ord(c) for c in gb2312_level1() + EXTRA_TEXT}
    return points


def build(source: Path = SOURCE, output: Path = OUTPUT) -> Path:
    from fontTools import subset
    from fontTools.ttLib import TTCollection

    collection = TTCollection(str(source))
    (font,) = [f for f in collection.fonts if f["name"].getDebugName(1) == "Noto Sans CJK SC"]
    options = subset.Options()
    options.layout_features = ["kern", "liga", "locl", "palt", "halt", "vert", "fwid", "hwid"]
    options.hinting = False  # CFF hints matter little at caption sizes and cost ~10% of the file
    options.name_IDs = ["*"]
    options.name_languages = ["*"]
    options.notdef_outline = True
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=wanted_codepoints())
    subsetter.subset(font)
    # A Modified Version under the OFL should not pose as the original: give the subset its own name.
    names = font["name"]
    for record in list(names.names):
        if record.nameID in (1, 4, 16):
            names.setName(FAMILY, record.nameID, record.platformID, record.platEncID, record.langID)
        elif record.nameID == 6:
            names.setName(
                "NotoSansCJKsc-UrbanEyeSubset", 6, record.platformID, record.platEncID, record.langID
            )
    font.save(str(output))
    return output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=SOURCE)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    out = build(args.source, args.output)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
