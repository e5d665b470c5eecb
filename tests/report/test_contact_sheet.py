"""Contact sheet drawing and file names: layout sizes, grey boxes for missing
frames, names that stay inside the output folder and differ per uri."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.report.contact_sheet import (
    HEADER,
    LINE,
    MISSING,
    PAD,
    ShotRow,
    draw_sheet,
    row_height,
    shots_per_page,
)
from pipeline.report.contact_sheet import fit as contact_sheet_fit
from pipeline.report.sheet_files import page_file, sheet_name, write_png
from pipeline.report.thumbnails import thumb_size


def test_first_middle_last_frames_and_caption():
    shot = ShotRow(3, 20, 50, 0.8, 2.0)
    assert shot.frames == (20, 34, 49)
    assert ShotRow(0, 7, 8, 0.0, 0.04).frames == (7, 7, 7)
    assert shot.caption() == "shot 3: 0.800-2.000 s (frames 20-49)"


def test_sheet_layout_and_missing_frames_are_grey():
    shots = [ShotRow(0, 0, 10, 0.0, 0.4), ShotRow(1, 10, 12, 0.4, 0.48)]
    frames = {i: np.full((30, 40, 3), 10 * i, np.uint8) for i in (0, 4, 9, 10)}  # 11 missing
    sheet = draw_sheet(("title", "sub"), shots, frames, (40, 30))
    assert sheet.size == (3 * 40 + 4 * PAD, HEADER + 2 * row_height(30))
    top = HEADER + row_height(30) + LINE  # second row's thumbnails
    assert sheet.getpixel((PAD + 20, top + 15)) == (100, 100, 100)  # frame 10
    assert sheet.getpixel((PAD + 2 * (40 + PAD) + 20, top + 15)) == MISSING  # frame 11


def test_pages_are_bounded():
    assert shots_per_page(90) == 200
    assert shots_per_page(320) * row_height(320) <= 32_000
    too_many = [ShotRow(i, i, i + 1, i, i + 1) for i in range(shots_per_page(320) + 1)]
    with pytest.raises(ValueError, match="do not fit one page"):
        draw_sheet(("t", ""), too_many, {}, (160, 320))


@pytest.mark.parametrize(("size", "expected"), [
    ((1920, 1080), (160, 90)), ((1080, 1920), (160, 284)),
    ((16, 4000), (160, 320)), ((0, 0), (160, 90)), ((4000, 10), (160, 8))])
def test_thumbnail_size_keeps_aspect_within_caps(size: tuple[int, int],
                                                  expected: tuple[int, int]):
    got = thumb_size(*size, 160)
    assert (got.width, got.height) == expected


@pytest.mark.parametrize("uri", ["/data/a/clip.mp4", "s3://b/x/../../etc/passwd",
                                 "s3://b/.hidden", "s3://bucket/", "/v/a b?*<>|:\\.mkv",
                                 "/v/" + "x" * 300 + ".mp4"])
def test_sheet_names_are_bare_safe_file_names(uri: str, tmp_path: Path):
    name = sheet_name(uri)
    assert name[0] != "." and "/" not in name and "\\" not in name and len(name) < 80
    path = write_png(Image.new("RGB", (4, 4)), str(tmp_path), page_file(name, 2))
    assert Path(path).parent == tmp_path and Path(path).name == f"{name}_p2.png"
    assert [p.name for p in tmp_path.iterdir()] == [f"{name}_p2.png"]  # no temp file left


def test_same_file_name_in_two_folders_gets_two_sheets():
    a, b = sheet_name("/a/clip.mp4"), sheet_name("/b/clip.mp4")
    assert a != b and a.startswith("clip-") and b.startswith("clip-")
    assert sheet_name("/a/clip.mp4", "content").endswith(".content")
    assert page_file(a, 1) == f"{a}.png"


def test_write_png_refuses_a_path(tmp_path: Path):
    for bad in ("../x.png", "sub/x.png", ".x.png"):
        with pytest.raises(ValueError, match="bare file name"):
            write_png(Image.new("RGB", (4, 4)), str(tmp_path), bad)


def test_a_long_heading_keeps_its_end():
    from PIL import ImageFont

    font = ImageFont.load_default()
    uri = "s3://bucket/" + "deep/" * 40 + "clip.mp4"
    cut = contact_sheet_fit(uri, font, 200)
    assert cut.startswith("...") and cut.endswith("/clip.mp4") and font.getlength(cut) <= 200
    assert contact_sheet_fit("short", font, 200) == "short"
