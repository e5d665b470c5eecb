"""The report's charts, drawn with matplotlib's object API (no pyplot, no
global state, the Agg renderer: no display needed) and returned as PNG bytes.
Pure: numbers in, an image out; the HTML puts the same numbers next to each."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

DPI = 100
GAP_S = 0.5  # seconds between a step's end and the next one's start drawn as a gap


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _png(figure: Any) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def bar_chart(labels: Sequence[str], values: Sequence[float], title: str,
              xlabel: str) -> bytes:
    """Horizontal bars, the first label on top, each bar's value at its end."""
    figure = _figure(7, 0.6 + 0.28 * max(1, len(labels)))
    axes = figure.add_subplot()
    positions = list(range(len(labels)))[::-1]
    bars = axes.barh(positions, values, color="#4c72b0")
    axes.set_yticks(positions, [_short(label) for label in labels])
    axes.bar_label(bars, labels=[f"{v:g}" for v in values], padding=2, fontsize=8)
    axes.set_title(title, fontsize=10)
    axes.set_xlabel(xlabel)
    axes.margins(x=0.12)
    return _png(figure)


def throughput_chart(starts: Sequence[float], ends: Sequence[float],
                     frames_per_s: Sequence[float], cumulative_videos: Sequence[int]) -> bytes:
    """Frames per second per time bucket (bars) and videos finished so far (line)."""
    figure = _figure(7, 3)
    axes = figure.add_subplot()
    widths = [e - s for s, e in zip(starts, ends, strict=True)]
    axes.bar(starts, frames_per_s, width=widths, align="edge", color="#4c72b0",
             label="frames/s")
    axes.set_xlabel("seconds since the run started")
    axes.set_ylabel("frames/s (bars)")
    line = axes.twinx()
    line.plot([0.0, *ends], [0, *cumulative_videos], marker=".", color="#dd8452")
    line.set_ylabel("videos finished (line)")
    line.set_ylim(bottom=0)
    return _png(figure)


Step = tuple[float, float, float]  # (from s, to s, value): a value held over a time span


def timeline_chart(series: Mapping[str, Sequence[Step]], title: str, ylabel: str,
                   ymax: float | None = None) -> bytes:
    """One step line per name (a stage), each value held from its start to its
    end (seconds since the run started); a gap where a series has no step."""
    figure = _figure(8, 3.2)
    axes = figure.add_subplot()
    colours = _colours(len(series))
    for colour, (name, steps) in zip(colours, series.items(), strict=True):
        axes.plot(*_step_xy(steps), color=colour, label=_short(name), linewidth=1.5)
    axes.set_title(title, fontsize=10)
    axes.set_xlabel("seconds since the run started")
    axes.set_ylabel(ylabel)
    axes.set_ylim(bottom=0, top=ymax)
    if series:
        axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _png(figure)


def _step_xy(steps: Sequence[Step]) -> tuple[list[float], list[float]]:
    """The points of a step line: each step's start and end at its value, a
    NaN (a gap) between steps that do not touch."""
    xs: list[float] = []
    ys: list[float] = []
    for start, end, value in steps:
        if xs and start - xs[-1] > GAP_S:
            xs.append(math.nan)
            ys.append(math.nan)
        xs += [start, end]
        ys += [value, value]
    return xs, ys


def _colours(n: int) -> list[Any]:
    """`n` distinct line colours (matplotlib's tab10, tab20 past 10)."""
    from matplotlib import colormaps

    palette = colormaps["tab10" if n <= 10 else "tab20"]
    return [palette(k % palette.N) for k in range(n)]


def training_chart(epochs: Sequence[int], series: Mapping[str, Sequence[float | None]]) -> bytes:
    """Loss (left) and top-1 accuracy (right) per epoch; `series` by column name
    (train_loss, val_loss, train_acc, val_acc), None where an epoch has no value."""
    figure = _figure(8, 3)
    for k, (kind, title) in enumerate((("loss", "cross-entropy loss"),
                                       ("acc", "top-1 accuracy"))):
        axes = figure.add_subplot(1, 2, k + 1)
        for split in ("train", "val"):
            values = series.get(f"{split}_{kind}", [])
            points = [(e, v) for e, v in zip(epochs, values, strict=True) if v is not None]
            if points:
                axes.plot(*zip(*points, strict=True), marker="o", label=split)
        axes.set_title(title, fontsize=10)
        axes.set_xlabel("epoch")
        axes.legend(fontsize=8)
    return _png(figure)


def _short(text: str, limit: int = 32) -> str:
    """`text` cut to `limit` characters (a long label keeps its start), its `$`
    escaped so matplotlib draws it as text, not math."""
    cut = text if len(text) <= limit else text[:limit - 3] + "..."
    return cut.replace("$", r"\$")
