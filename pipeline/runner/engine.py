"""The interface between the orchestration (label_run) and an execution engine."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from pipeline.analyses.frame_model import FrameModelInfo
from pipeline.corpus.video_ref import VideoRef
from pipeline.plan.video_info import VideoInfo
from pipeline.plan.work_unit import WorkUnit
from pipeline.runner.batch_result import BatchResult

ResultSink = Callable[[BatchResult], None]


class Engine(Protocol):
    """Runs probes and units somewhere (in-process, or on Ray)."""

    name: str

    def start_analysis(self, model: FrameModelInfo) -> None:
        """Begin loading the model where it will run; may return before it is loaded."""
        ...

    def probe(self, refs: list[VideoRef]) -> list[VideoInfo]:
        """VideoInfo for each ref, in order."""
        ...

    def run(self, units: list[WorkUnit], sink: ResultSink) -> None:
        """Decode and analyse every unit, calling `sink` (on the driver) as
        results arrive; each unit appears in exactly one BatchResult."""
        ...

    def close(self) -> None: ...
