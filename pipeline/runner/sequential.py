"""SequentialEngine: the stages in one process, no Ray (unit tests, debugging)."""

from __future__ import annotations

from collections.abc import Callable

from pipeline.analyses.frame_classifier import FrameClassifier
from pipeline.analyses.frame_model import FrameModelInfo
from pipeline.corpus.video_ref import VideoRef
from pipeline.decode.unit_decoder import DecodeSettings, decode_units
from pipeline.plan.probe import probe_videos
from pipeline.plan.video_info import VideoInfo
from pipeline.plan.work_unit import WorkUnit
from pipeline.runner.batch_result import analyse
from pipeline.runner.engine import ResultSink
from pipeline.storage import StorageOptions


class SequentialEngine:
    """Decodes and analyses `units_per_batch` units at a time, in order."""

    name = "sequential"

    def __init__(self, decode: DecodeSettings,
                 classifier_factory: Callable[[FrameModelInfo], FrameClassifier],
                 storage: StorageOptions, units_per_batch: int = 8) -> None:
        self.decode = decode
        self.classifier_factory = classifier_factory
        self.classifier: FrameClassifier | None = None
        self.storage = storage
        self.units_per_batch = units_per_batch

    def start_analysis(self, model: FrameModelInfo) -> None:
        self.classifier = self.classifier_factory(model)
        self.classifier.setup()

    def probe(self, refs: list[VideoRef]) -> list[VideoInfo]:
        return probe_videos(refs, self.storage)

    def run(self, units: list[WorkUnit], sink: ResultSink) -> None:
        if self.classifier is None:
            raise RuntimeError("start_analysis() must come before run()")
        for start in range(0, len(units), self.units_per_batch):
            batch = units[start : start + self.units_per_batch]
            sink(analyse(self.classifier, decode_units(self.decode, batch)))

    def close(self) -> None:
        return None
