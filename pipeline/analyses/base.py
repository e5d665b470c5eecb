"""The Analysis interface: what turns a unit's decoded frames into table rows.

An analysis is built light on the driver (no torch) and shipped to where it
runs: a model actor (`setup()` loads the model there) or, for analyses
without a model (shots), the decode worker itself, next to the frames.
`process()` returns each unit's rows separately, so a unit is committed
whole across every analysis of the run, whichever batch it rode in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import pyarrow as pa

from pipeline.analyses.model_loader import ModelInfo
from pipeline.config import AnalysisSpec
from pipeline.decode.decoded_unit import DecodedUnit
from pipeline.lake.commit_record import UnitOutcome
from pipeline.plan.video_info import VideoInfo


@dataclass
class UnitRows:
    """One analysis's output for one unit: table rows (without run_id) and a
    small JSON-able summary kept in the commit record for video-level steps."""

    tables: dict[str, pa.Table] = field(default_factory=dict)
    summary: dict[str, Any] | None = None


class Analysis(Protocol):
    name: str  # unique within the run (the kind, unless an analysis repeats)
    spec: AnalysisSpec
    on_decoder: bool  # True: runs in the decode worker (no model, no actor)

    def setup(self) -> ModelInfo:
        """Load the model (inside its actor); ConfigError/StorageError when bad."""
        ...

    def process(self, units: list[DecodedUnit]) -> dict[str, UnitRows]:
        """Rows of every successfully decoded unit that has work for this analysis,
        by unit id."""
        ...

    def finish_video(self, info: VideoInfo, outcomes: list[UnitOutcome]) -> dict[str, pa.Table]:
        """Video-level rows once every unit of a video is done (on the driver),
        from the units' outcomes and summaries (earlier runs' included)."""
        ...
