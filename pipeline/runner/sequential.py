"""SequentialEngine: the stages in one process, no Ray (unit tests, debugging)."""

from __future__ import annotations

from pipeline.analyses.frame_classifier import FrameClassifier
from pipeline.analyses.frame_model import FrameModelInfo
from pipeline.corpus.video_ref import VideoRef
from pipeline.decode.unit_decoder import DecodeSettings, decode_units
from pipeline.plan.probe import probe_videos
from pipeline.runner.batch_result import analyse
from pipeline.runner.engine import Planner, ResultSink
from pipeline.storage import StorageOptions


class SequentialEngine:
    """Decodes and analyses `units_per_batch` units at a time, in order."""

    name = "sequential"

    def __init__(self, decode: DecodeSettings, classifier: FrameClassifier,
                 storage: StorageOptions, units_per_batch: int = 8) -> None:
        self.decode = decode
        self.classifier = classifier
        self.storage = storage
        self.units_per_batch = units_per_batch
        self._info: FrameModelInfo | None = None

    def start_analysis(self) -> None:
        self._info = self.classifier.setup()

    def model_info(self) -> FrameModelInfo:
        if self._info is None:
            raise RuntimeError("start_analysis() must come before model_info()")
        return self._info

    def run(self, refs: list[VideoRef], planner: Planner, sink: ResultSink) -> None:
        units = planner(probe_videos(refs, self.storage))
        for start in range(0, len(units), self.units_per_batch):
            batch = units[start : start + self.units_per_batch]
            sink(analyse(self.classifier, decode_units(self.decode, batch)))

    def close(self) -> None:
        return None
