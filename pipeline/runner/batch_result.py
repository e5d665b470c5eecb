"""What the analysis stage hands back to the driver for a batch of units."""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from pipeline.analyses.frame_classifier import FrameClassifier
from pipeline.decode.decoded_unit import DecodedUnit
from pipeline.lake.commit_record import UnitOutcome
from pipeline.plan.work_unit import WorkUnit


@dataclass
class BatchResult:
    """Outcomes of some units and the table rows they produced (without run_id)."""

    outcomes: list[tuple[WorkUnit, UnitOutcome]] = field(default_factory=list)
    tables: dict[str, pa.Table] = field(default_factory=dict)

    @property
    def frames(self) -> int:
        return sum(outcome.frames for _, outcome in self.outcomes)


def outcome_of(decoded: DecodedUnit) -> UnitOutcome:
    return UnitOutcome(video_key=decoded.unit.video.content_key,
                       status="ok" if decoded.ok else "error", error=decoded.error,
                       decoder=decoded.decoder, decoder_n_frames=decoded.decoder_n_frames,
                       frames=len(decoded.frames) if decoded.ok else 0)


def failed_outcome(unit: WorkUnit, error: str) -> UnitOutcome:
    """Outcome of a unit whose worker hung or crashed (nothing decoded)."""
    return UnitOutcome(video_key=unit.video.content_key, status="error", error=error,
                       decoder="", decoder_n_frames=0, frames=0)


def analyse(classifier: FrameClassifier, decoded: list[DecodedUnit]) -> BatchResult:
    """Run the analysis over decoded units: the inference stage's whole job."""
    tables = classifier.process(decoded)
    return BatchResult([(d.unit, outcome_of(d)) for d in decoded], tables)
