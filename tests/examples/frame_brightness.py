"""frame_brightness: how bright and how contrasted each sampled frame is.

A whole analysis in one module: its options, what it reads, its table, and
how it turns decoded frames into rows. No model, so it runs in the decode
worker, next to the frames. Register it with one line in
pipeline/analyses/kinds.py: `FRAME_BRIGHTNESS_KIND,`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from pipeline.analyses.base import UnitRows
from pipeline.analyses.kind import AnalysisKind
from pipeline.analyses.model_loader import ModelInfo
from pipeline.analyses.options import AnalysisOptions, option
from pipeline.analyses.rows import table_in
from pipeline.config import AnalysisSpec, FrameSize, SampleSpec
from pipeline.decode.decoded_unit import DecodedUnit
from pipeline.values import fraction

FRAME_BRIGHTNESS = pa.schema([
    ("uri", pa.string()),
    ("frame_index", pa.int64()),
    ("timestamp_s", pa.float64()),
    ("luma", pa.float32()),  # mean Rec. 601 luma, 0 (black) to 1 (white)
    ("contrast", pa.float32()),  # standard deviation of luma
    ("dark", pa.bool_()),  # luma below the analysis's dark_below
    ("run_id", pa.string()),  # the three columns every row gets stamped with
    ("content_key", pa.string()),
    ("analysis_key", pa.string()),
])


@dataclass(frozen=True)
class BrightnessOptions(AnalysisOptions):
    dark_below: float = option(0.1, fraction, "a frame darker than this is dark (0 to 1)")


class FrameBrightness:
    """uint8 RGB frames [F, H, W, 3] -> one row per sampled frame."""

    on_decoder = True  # no model: run next to the frames

    def __init__(self, name: str, spec: AnalysisSpec) -> None:
        self.name, self.spec = name, spec

    def setup(self) -> ModelInfo:
        return ModelInfo("frame_brightness", (), "", None)

    def process(self, units: list[DecodedUnit]) -> dict[str, UnitRows]:
        out = {}
        for decoded in units:
            work = decoded.unit.work_for(self.name)
            if not decoded.ok or work is None or not work.frames:
                continue
            rgb = decoded.take(work.frames).astype(np.float32) / 255
            luma = rgb @ np.asarray([0.299, 0.587, 0.114], np.float32)  # [F, H, W]
            mean = luma.mean(axis=(1, 2))
            columns: dict[str, Any] = {
                "uri": [decoded.unit.video.uri] * len(work.frames),
                "frame_index": list(work.frames), "timestamp_s": decoded.stamps(work.frames),
                "luma": mean, "contrast": luma.std(axis=(1, 2)),
                "dark": mean < self.spec.options.dark_below}
            table = table_in(columns, FRAME_BRIGHTNESS)
            out[decoded.unit.unit_id] = UnitRows(tables={"frame_brightness": table})
        return out

    def finish_video(self, info: object, outcomes: object) -> dict[str, pa.Table]:
        return {}  # every row is written with its unit


FRAME_BRIGHTNESS_KIND = AnalysisKind(
    name="frame_brightness", summary="mean luma and contrast per sampled frame",
    options=BrightnessOptions, common=("sample", "size"),
    tables={"frame_brightness": FRAME_BRIGHTNESS},
    build=lambda name, spec, **_: FrameBrightness(name, spec),
    sample=SampleSpec("fps", 1.0), size=FrameSize(64, 64))
