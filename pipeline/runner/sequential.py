"""SequentialEngine: the stages in one process, no Ray (unit tests, debugging)."""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterable, Iterator

from pipeline.analyses.base import Analysis
from pipeline.analyses.model_loader import ModelInfo
from pipeline.corpus.video_ref import VideoRef
from pipeline.decode.unit_decoder import DecodeSettings
from pipeline.observe.stage_meter import StageMeter
from pipeline.observe.work_times import WorkTimes, elapsed_since
from pipeline.plan.probe import probe_videos
from pipeline.plan.video_info import VideoInfo
from pipeline.plan.work_unit import WorkUnit
from pipeline.runner.batch_result import (
    BatchResult,
    DecodeReport,
    UnitAssembler,
    decode_stage,
    model_stage,
)
from pipeline.runner.engine import Planner
from pipeline.runner.metering import count_analyses, count_decoded, count_submitted
from pipeline.runner.scheduling import batched
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

    def run(self, refs: Iterable[VideoRef], planner: Planner,
            meter: StageMeter) -> Iterator[BatchResult]:
        assembler = UnitAssembler([a.name for a in self.models])
        self._describe(meter)
        for probe_batch in batched(refs, PROBES_PER_BATCH):
            units = planner(self._probe(probe_batch, meter))
            while batch := list(itertools.islice(units, self.units_per_batch)):
                times = WorkTimes()
                reports, decoded = decode_stage(self.decode, batch, self.on_decoder, times)
                for report in reports:
                    assembler.decoded(report)
                assembler.add_model_rows(batch, model_stage(self.models, decoded, times))
                self._count(meter, batch, reports, times)
                yield from assembler.take()

    def _describe(self, meter: StageMeter) -> None:
        """One process does every stage, one after another."""
        meter.mode, meter.cpus = "sequential", float(os.cpu_count() or 1)
        meter.models = frozenset(a.name for a in self.models)
        for stage in ("list", "probe", "fetch", "decode", "commit"):
            meter.workers(stage, 1)
        for analysis in self.on_decoder + self.models:
            meter.workers("analysis", 1, analysis.name)

    def _probe(self, refs: list[VideoRef], meter: StageMeter) -> list[VideoInfo]:
        began = time.perf_counter()
        infos = probe_videos(refs, self.storage, max_frame_pixels=self.decode.max_frame_pixels,
                             keyframes=self.decode.index_keyframes)
        meter.add("probe", items_in=len(refs), items_out=len(infos), busy_s=elapsed_since(began))
        return infos

    def _count(self, meter: StageMeter, batch: list[WorkUnit], reports: list[DecodeReport],
               times: WorkTimes) -> None:
        count_submitted(meter, batch)
        count_decoded(meter, reports, times, [a.name for a in self.on_decoder])
        ok = [r.unit for r in reports if r.outcome.status == "ok"]
        names = [a.name for a in self.models]
        count_analyses(meter, names, ok, "in")
        count_analyses(meter, names, ok, "out")
        meter.tick()

    def close(self) -> None:
        return None
