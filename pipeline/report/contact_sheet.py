"""Contact sheets: one row per shot (its first, middle and last frame, and a
caption with its times), drawn with Pillow. Pure: rows and frames in, an image out.

Layout of a page, top to bottom: two heading lines (HEADER pixels), then per shot a caption line
`shot k: start_s-end_s s (frames a-b)` (b inclusive: the shot's last frame)
above three thumbnails (first, middle, last frame) side by side. A frame that
could not be decoded is a grey box. Text is ASCII: Pillow's default font has
no en dash.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

PAD = 4  # pixels between thumbnails, and around the sheet
LINE = 14  # pixels of one text line (Pillow's default font is 10 px high)
BACKGROUND = (255, 255, 255)
MISSING = (128, 128, 128)  # a frame that could not be decoded
MAX_SHOTS_PER_PAGE = 200
MAX_PAGE_HEIGHT = 32_000  # pixels: fewer shots per page when thumbnails are tall
HEADER = 2 * LINE + PAD  # pixels above the first shot


@dataclass(frozen=True)
class ShotRow:
    """One shot of a video, as in the `shots` table: frames [start_frame,
    end_frame) (end exclusive), presentation times [start_s, end_s) in seconds."""

    shot_index: int
    start_frame: int
    end_frame: int
    start_s: float
    end_s: float

    @property
    def frames(self) -> tuple[int, int, int]:
        """Frame indices of its first, middle and last frame (equal for a 1-frame shot)."""
        last = max(self.start_frame, self.end_frame - 1)
        return self.start_frame, (self.start_frame + last) // 2, last

    def caption(self) -> str:
        return (f"shot {self.shot_index}: {self.start_s:.3f}-{self.end_s:.3f} s "
                f"(frames {self.frames[0]}-{self.frames[2]})")


def row_height(thumb_height: int) -> int:
    """Pixels one shot takes on a page: its caption line and its thumbnails."""
    return LINE + thumb_height + PAD


def shots_per_page(thumb_height: int) -> int:
    """Shots on one page: MAX_SHOTS_PER_PAGE, fewer when a page would pass MAX_PAGE_HEIGHT."""
    return max(1, min(MAX_SHOTS_PER_PAGE, (MAX_PAGE_HEIGHT - HEADER) //
                      row_height(thumb_height)))


def draw_sheet(heading: tuple[str, str], shots: Sequence[ShotRow],
               frames: Mapping[int, np.ndarray], thumb_size: tuple[int, int]) -> Image.Image:
    """A page for `shots` (at most shots_per_page of them) under two heading
    lines (each cut at the left to fit: a long uri keeps its file name).

    `frames`: frame index -> uint8 [H, W, 3] RGB thumbnail, H x W = `thumb_size`
    (width, height) in pixels; indices it lacks are drawn grey. Returns an RGB
    image (3 * width + 4 * PAD) pixels wide, HEADER + len(shots) *
    row_height(height) high.
    """
    if len(shots) > shots_per_page(thumb_size[1]):
        raise ValueError(f"{len(shots)} shots do not fit one page "
                         f"(at most {shots_per_page(thumb_size[1])})")
    width, height = thumb_size
    sheet = Image.new("RGB", (3 * width + 4 * PAD, HEADER + len(shots) * row_height(height)),
                      BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for line, text in enumerate(heading):
        draw.text((PAD, 2 + line * LINE), fit(text, font, sheet.width - 2 * PAD),
                  fill=(0, 0, 0), font=font)
    for row, shot in enumerate(shots):
        top = HEADER + row * row_height(height)
        draw.text((PAD, top + 1), shot.caption(), fill=(0, 0, 0), font=font)
        for column, index in enumerate(shot.frames):
            _paste(sheet, frames.get(index), (PAD + column * (width + PAD), top + LINE),
                   thumb_size)
    return sheet


def fit(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: int) -> str:
    """`text`, or its end after "..." when it is wider than `width` pixels (a long
    uri keeps its file name)."""
    if font.getlength(text) <= width:
        return text
    while text and font.getlength("..." + text) > width:
        text = text[1:]
    return "..." + text


def _paste(sheet: Image.Image, frame: np.ndarray | None, corner: tuple[int, int],
           size: tuple[int, int]) -> None:
    """Paste one thumbnail (uint8 [H, W, 3]) at `corner` (x, y), or a grey box."""
    if frame is None:
        sheet.paste(Image.new("RGB", size, MISSING), corner)
        return
    picture = Image.fromarray(np.ascontiguousarray(frame, np.uint8), "RGB")
    if picture.size != size:  # a decoder that ignored the size asked for
        picture = picture.resize(size)
    sheet.paste(picture, corner)
