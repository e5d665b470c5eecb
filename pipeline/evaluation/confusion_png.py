"""Render a confusion matrix as a PNG heat map with Pillow (no matplotlib).

Cell colour is the row-normalised share (white = 0, dark blue = the whole row),
so each row reads as "where did this truth class go" whatever its support;
the text in each cell is the absolute count.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageFont

_FONT_PX = 12
_PAD = 6  # pixels between labels and the grid
_MIN_CELL = 36  # pixels; cells grow to fit their widest count
_TITLE = "rows: truth, columns: predicted; colour: share of the row"
_LIGHT = np.array([247, 251, 255], dtype=np.float64)  # colour of a 0 share
_DARK = np.array([8, 48, 107], dtype=np.float64)  # colour of a full row


def _font() -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=_FONT_PX)


def _text_size(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont) -> tuple[int, int]:
    left, top, right, bottom = ImageDraw.Draw(Image.new("L", (1, 1))).textbbox(
        (0, 0), text, font=font)
    return int(right - left), int(bottom - top)


def _row_shares(counts: np.ndarray) -> np.ndarray:
    """counts [R, K] -> float64 [R, K] shares of each row (0 for an empty row)."""
    totals = counts.sum(axis=1, keepdims=True).astype(np.float64)
    out = np.zeros(counts.shape, dtype=np.float64)
    np.divide(counts, totals, out=out, where=totals > 0)
    return out


def _paste_vertical(image: Image.Image, text: str, x: int, bottom: int,
                    font: ImageFont.FreeTypeFont | ImageFont.ImageFont) -> None:
    """Draw `text` rotated 90 degrees (reading bottom-up) with its end at `bottom`."""
    width, height = _text_size(text, font)
    mask = Image.new("L", (width + 2, height + 4))
    ImageDraw.Draw(mask).text((0, 0), text, fill=255, font=font, anchor="lt")
    mask = mask.rotate(90, expand=True)
    image.paste((0, 0, 0), (x, bottom - mask.height), mask)


def confusion_png(counts: np.ndarray, row_labels: list[str], col_labels: list[str]) -> bytes:
    """PNG bytes of the heat map of `counts` (integers [R, K], rows = truth
    classes, columns = predicted classes), labelled on both axes."""
    if counts.shape != (len(row_labels), len(col_labels)):
        raise ValueError(f"counts {counts.shape} do not match {len(row_labels)} row and "
                         f"{len(col_labels)} column labels")
    font = _font()
    cell = max([_MIN_CELL, *(_text_size(str(int(c)), font)[0] + _PAD for c in counts.flat)])
    left = max([_text_size(s, font)[0] for s in row_labels] + [0]) + 2 * _PAD
    top = 2 * _FONT_PX + max([_text_size(s, font)[0] for s in col_labels] + [0]) + 2 * _PAD
    width = max(left + cell * len(col_labels), _text_size(_TITLE, font)[0]) + _PAD
    image = Image.new("RGB", (width, top + cell * len(row_labels) + _PAD), "white")
    draw = ImageDraw.Draw(image)
    draw.text((_PAD // 2, _PAD // 2), _TITLE, fill="black", font=font)
    for j, label in enumerate(col_labels):
        _paste_vertical(image, label, left + j * cell + cell // 2 - _FONT_PX // 2, top - _PAD,
                        font)
    shares = _row_shares(counts)
    for i, label in enumerate(row_labels):
        y = top + i * cell
        draw.text((left - _PAD, y + cell // 2), label, fill="black", font=font, anchor="rm")
        for j in range(len(col_labels)):
            _draw_cell(draw, (left + j * cell, y, cell), int(counts[i, j]), shares[i, j], font)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _draw_cell(draw: ImageDraw.ImageDraw, box: tuple[int, int, int], count: int, share: float,
               font: ImageFont.FreeTypeFont | ImageFont.ImageFont) -> None:
    """One square cell at (x, y) of side `size` pixels: colour by share, count as text."""
    x, y, size = box
    colour = tuple(int(c) for c in np.round(_LIGHT + (_DARK - _LIGHT) * share))
    draw.rectangle((x, y, x + size - 1, y + size - 1), fill=colour, outline=(200, 200, 200))
    ink = "white" if share > 0.5 else "black"  # dark cells need light text to stay legible
    draw.text((x + size // 2, y + size // 2), str(count), fill=ink, font=font, anchor="mm")
