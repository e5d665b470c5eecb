"""The interface between the orchestration (label_run) and an execution engine."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from pipeline.analyses.model_loader import ModelInfo
from pipeline.corpus.video_ref import VideoRef
from pipeline.observe.stage_meter import StageMeter
from pipeline.plan.video_info import VideoInfo
from pipeline.plan.work_unit import WorkUnit
from pipeline.runner.batch_result import BatchResult

# Called on the driver with probe results as they arrive; returns the units to
# run, made lazily: the engine pulls them as it has room (bounded memory).
Planner = Callable[[list[VideoInfo]], Iterator[WorkUnit]]


class Engine(Protocol):
    """Runs probes and units somewhere (in-process, or on Ray)."""

    name: str

    def start_analysis(self) -> None:
        """Begin loading the models where they will run; may return before they are."""
        ...

    def model_infos(self) -> dict[str, ModelInfo]:
        """What each model analysis's loaded model is (by analysis name); waits for
        loading, raises ConfigError or StorageError when weights or labels are bad."""
        ...

    def run(self, refs: Iterable[VideoRef], planner: Planner,
            meter: StageMeter) -> Iterator[BatchResult]:
        """Probe `refs` (pulled as the engine has room: listing and planning
        stream behind it), hand each batch of probe results to `planner`, then decode
        and analyse the units it yields, yielding (on the driver) each unit's
        BatchResult as it completes, each unit exactly once. Every planner
        iterator is run to its end (that is when the run learns a video's
        unit count), and pulled no further ahead than the engine has room for.
        What each stage did goes to `meter` as it happens (pipeline/observe)."""
        ...

    def close(self) -> None: ...
