"""What the stages hand back to the driver, and how a unit's parts are joined.

A unit is decoded once (the decode stage runs the analyses without a model,
next to the frames) and then visits every model analysis that has work in
it, possibly in different actors and batches. `UnitAssembler` holds each
unit's parts until all have arrived and then emits the unit whole, so a
commit always carries every row of each of its units.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import pyarrow as pa

from pipeline.analyses.base import Analysis, UnitRows
from pipeline.decode.decoded_unit import DecodedUnit
from pipeline.decode.local_copy import fetched
from pipeline.decode.unit_decoder import DecodeSettings, decode_units
from pipeline.lake.commit_record import UnitOutcome
from pipeline.observe.work_times import WorkTimes, elapsed_since
from pipeline.plan.work_unit import WorkUnit

# (analysis name, table name): rows are kept apart by the analysis that made
# them, so the committer can stamp each with its analysis_key.
TableKey = tuple[str, str]


@dataclass
class BatchResult:
    """Outcomes of whole units and the table rows they produced (without run_id),
    by (analysis, table). A failed unit has no rows, so running it again later
    duplicates nothing."""

    outcomes: list[tuple[WorkUnit, UnitOutcome]] = field(default_factory=list)
    tables: dict[TableKey, pa.Table] = field(default_factory=dict)

    @property
    def frames(self) -> int:
        return sum(outcome.frames for _, outcome in self.outcomes)


@dataclass
class DecodeReport:
    """The small facts of one decoded unit, which reach the driver before (and
    without) its frames: how decoding went and the decode-side analyses' rows."""

    unit: WorkUnit
    outcome: UnitOutcome
    tables: dict[TableKey, pa.Table] = field(default_factory=dict)


ModelRows = dict[str, dict[str, UnitRows]]  # analysis -> unit id -> rows


def outcome_of(decoded: DecodedUnit) -> UnitOutcome:
    return UnitOutcome(video_key=decoded.unit.video.content_key,
                       status="ok" if decoded.ok else "error", error=decoded.error,
                       decoder=decoded.decoder, decoder_n_frames=decoded.decoder_n_frames,
                       frames=len(decoded.frames) if decoded.ok else 0)


def failed_outcome(unit: WorkUnit, error: str) -> UnitOutcome:
    """Outcome of a unit whose worker hung or crashed (nothing decoded)."""
    return UnitOutcome(video_key=unit.video.content_key, status="error", error=error,
                       decoder="", decoder_n_frames=0, frames=0)


def decode_stage(settings: DecodeSettings, units: list[WorkUnit], on_decoder: list[Analysis],
                 times: WorkTimes) -> tuple[list[DecodeReport], list[DecodedUnit]]:
    """Decode `units` and run the analyses that need no model on their frames;
    adds the seconds spent fetching, decoding and in each analysis to `times`."""
    start, (bytes_before, fetch_before) = time.perf_counter(), fetched()
    decoded = decode_units(settings, units)
    bytes_after, fetch_after = fetched()
    fetch_s = max(fetch_after - fetch_before, 0.0)
    times.fetch_s += fetch_s
    times.fetch_bytes += bytes_after - bytes_before
    times.decode_s += max(elapsed_since(start) - fetch_s, 0.0)
    rows = []
    for analysis in on_decoder:
        with times.analysis(analysis.name):
            rows.append(analysis.process(decoded))
    reports = []
    for unit in decoded:
        uid = unit.unit.unit_id
        parts = [(a.name, r[uid]) for a, r in zip(on_decoder, rows, strict=True) if uid in r]
        summaries = {name: p.summary for name, p in parts if p.summary is not None}
        tables = {(name, t): table for name, p in parts for t, table in p.tables.items()}
        reports.append(DecodeReport(unit.unit, replace(outcome_of(unit), summaries=summaries),
                                    tables))
    return reports, decoded


def model_stage(analyses: list[Analysis], decoded: list[DecodedUnit],
                times: WorkTimes) -> ModelRows:
    """Every model analysis over the decoded units (one batch each); adds each
    one's seconds to `times`."""
    rows: ModelRows = {}
    for analysis in analyses:
        with times.analysis(analysis.name):
            rows[analysis.name] = analysis.process(decoded)
    return rows


@dataclass
class _Pending:
    unit: WorkUnit
    outcome: UnitOutcome
    waiting: set[str]
    tables: dict[TableKey, list[pa.Table]] = field(default_factory=dict)

    def add(self, tables: dict[TableKey, pa.Table]) -> None:
        for key, table in tables.items():
            self.tables.setdefault(key, []).append(table)


class UnitAssembler:
    """Joins each unit's decode report with the rows of its model analyses and
    holds the unit, whole, once nothing is missing, until the engine takes it
    (`take`) and yields it."""

    def __init__(self, model_analyses: list[str]) -> None:
        self.model_analyses = model_analyses
        self._pending: dict[str, _Pending] = {}
        self._complete: list[BatchResult] = []

    def take(self) -> list[BatchResult]:
        """The units completed since the last call, each once."""
        complete, self._complete = self._complete, []
        return complete

    def waiting_for(self, unit: WorkUnit) -> list[str]:
        """Model analyses that have work in `unit`."""
        return [name for name in self.model_analyses if unit.work_for(name) is not None]

    def decoded(self, report: DecodeReport) -> bool:
        """Record the decode report; True when the unit now goes to its models."""
        unit = report.unit
        waiting = set(self.waiting_for(unit)) if report.outcome.status == "ok" else set()
        entry = _Pending(unit, report.outcome, waiting)
        if report.outcome.status == "ok":
            entry.add(report.tables)
        self._pending[unit.unit_id] = entry
        self._emit_if_done(entry)
        return bool(waiting)

    def analysed(self, analysis: str, unit: WorkUnit, rows: UnitRows | None) -> None:
        """Record one model analysis's rows of `unit` (None: it had none)."""
        entry = self._pending.get(unit.unit_id)
        if entry is None or analysis not in entry.waiting:
            return
        entry.waiting.discard(analysis)
        if rows is not None:
            entry.add({(analysis, t): table for t, table in rows.tables.items()})
            if rows.summary is not None:  # a model analysis's facts for its video-level step
                entry.outcome = replace(entry.outcome, summaries={**entry.outcome.summaries,
                                                                  analysis: rows.summary})
        self._emit_if_done(entry)

    def add_model_rows(self, units: list[WorkUnit], rows: ModelRows) -> None:
        for name, by_unit in rows.items():
            for unit in units:
                self.analysed(name, unit, by_unit.get(unit.unit_id))

    def failed(self, unit: WorkUnit, reason: str) -> None:
        """The unit failed as a whole (its worker hung or crashed)."""
        self._pending.pop(unit.unit_id, None)
        self._complete.append(BatchResult([(unit, failed_outcome(unit, reason))]))

    def abandon(self, unit: WorkUnit, reason: str) -> None:
        """A model call holding the unit failed: fail the unit, unless it is
        settled already (another analysis's call failed it first)."""
        if unit.unit_id in self._pending:
            self.failed(unit, reason)

    def _emit_if_done(self, entry: _Pending) -> None:
        if entry.waiting:
            return
        del self._pending[entry.unit.unit_id]
        tables = {key: pa.concat_tables(parts) for key, parts in entry.tables.items()}
        self._complete.append(BatchResult([(entry.unit, entry.outcome)], tables))
