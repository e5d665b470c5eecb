"""SequentialEngine: the stages in one process, no Ray (unit tests, debugging)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from pipeline.analyses.base import Analysis
from pipeline.analyses.model_loader import ModelInfo
from pipeline.corpus.video_ref import VideoRef
from pipeline.decode.unit_decoder import DecodeSettings
from pipeline.plan.probe import probe_videos
from pipeline.runner.batch_result import BatchResult, UnitAssembler, decode_stage, model_stage
from pipeline.runner.engine import Planner
from pipeline.storage_options import StorageOptions

PROBES_PER_BATCH = 16  # videos probed, then planned and decoded, at a time


class SequentialEngine:
    """Probes a batch of videos, then decodes and analyses their units
    `units_per_batch` at a time, in order (memory: one batch of units)."""

    name = "sequential"

    def __init__(self, decode: DecodeSettings, analyses: list[Analysis],
                 storage: StorageOptions, units_per_batch: int = 8) -> None:
        self.decode = decode
        self.on_decoder = [a for a in analyses if a.on_decoder]
        self.models = [a for a in analyses if not a.on_decoder]
        self.storage = storage
        self.units_per_batch = units_per_batch
        self._infos: dict[str, ModelInfo] | None = None

    def start_analysis(self) -> None:
        self._infos = {a.name: a.setup() for a in self.models}

    def model_infos(self) -> dict[str, ModelInfo]:
        if self._infos is None:
            raise RuntimeError("start_analysis() must come before model_infos()")
        return self._infos

    def run(self, refs: list[VideoRef], planner: Planner) -> Iterator[BatchResult]:
        assembler = UnitAssembler([a.name for a in self.models])
        for start in range(0, len(refs), PROBES_PER_BATCH):
            infos = probe_videos(refs[start : start + PROBES_PER_BATCH], self.storage,
                                 max_frame_pixels=self.decode.max_frame_pixels,
                                 keyframes=self.decode.index_keyframes)
            units = planner(infos)
            while batch := list(itertools.islice(units, self.units_per_batch)):
                reports, decoded = decode_stage(self.decode, batch, self.on_decoder)
                for report in reports:
                    assembler.decoded(report)
                assembler.add_model_rows(batch, model_stage(self.models, decoded))
                yield from assembler.take()

    def close(self) -> None:
        return None
