"""A run's stage metrics for the report, read from the `run_stages` table
(one row per run, stage, analysis and interval of ~5 s) with DuckDB: totals
per stage and a timeline of utilisation and frames/s per stage.

Bounded whatever the run: at most MAX_SERIES stages (in the pipeline's
order, then by name) and MAX_POINTS time buckets per stage; a bucket holds
consecutive intervals, summed. A column the table lacks (a lake written by
another version, a hand-written file) reads as null: its figures are left
out, never invented.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pipeline.observe.stage_meter import STAGES
from pipeline.report.report_data import views

MAX_SERIES = 20  # stages (and analyses) shown
MAX_POINTS = 200  # time buckets per stage in the timeline
# the run_stages columns read, and their types (a missing one reads as a typed null)
COLUMNS = {"run_id": "VARCHAR", "stage": "VARCHAR", "analysis": "VARCHAR",
           "interval_start": "TIMESTAMPTZ", "interval_s": "DOUBLE", "workers": "INTEGER",
           "items_in": "BIGINT", "items_out": "BIGINT", "frames_out": "BIGINT",
           "busy_s": "DOUBLE", "idle_s": "DOUBLE", "blocked_s": "DOUBLE", "bytes": "BIGINT"}


@dataclass(frozen=True)
class StageTotals:
    """One stage's (or analysis's) sums over the run's rows; `workers` the most
    it had; `utilisation` busy_s / (workers × the run's wall_s), at most 1 (as
    runs.stages computes it), None without workers or wall time."""

    stage: str
    analysis: str | None
    workers: int | None
    items_in: int | None
    items_out: int | None
    frames_out: int | None
    busy_s: float | None
    idle_s: float | None
    blocked_s: float | None
    bytes: int | None
    utilisation: float | None


def stage_label(stage: str, analysis: str | None) -> str:
    """What a chart calls a stage: the analysis of an `analysis` row, else the stage."""
    return analysis if stage == "analysis" and analysis else stage


@dataclass(frozen=True)
class TimelinePoint:
    """One stage's consecutive intervals starting in one time bucket: from
    `start_s` to `end_s` seconds after the run started, `seconds` of
    intervals, their frames out and busy seconds, utilisation (busy_s over
    workers × interval seconds, at most 1) and frames/s."""

    stage: str
    analysis: str | None
    start_s: float
    end_s: float
    seconds: float
    frames_out: int | None
    busy_s: float | None
    utilisation: float | None
    frames_per_s: float | None


def _source(con: Any) -> str | None:
    """SELECT of COLUMNS from run_stages (null for each column it lacks), or
    None when the lake has no run_stages table."""
    if "run_stages" not in views(con):
        return None
    present = {r[0] for r in con.execute("DESCRIBE run_stages").fetchall()}
    picked = ", ".join(c if c in present else f"CAST(NULL AS {kind}) AS {c}"
                       for c, kind in COLUMNS.items())
    return f"SELECT {picked} FROM run_stages"


_ORDER = "coalesce(list_position(?, stage), 1000), analysis NULLS FIRST, stage"

_TOTALS_SQL = """
SELECT stage, analysis, max(workers), sum(items_in), sum(items_out), sum(frames_out),
    sum(busy_s), sum(idle_s), sum(blocked_s), sum(bytes),
    least(sum(busy_s) / nullif(max(workers) * CAST(? AS DOUBLE), 0), 1.0)
FROM ({source}) WHERE run_id = ? AND stage IS NOT NULL
GROUP BY stage, analysis ORDER BY {order} LIMIT {limit}
"""


def stage_totals(con: Any, run_id: str, wall_s: float | None) -> list[StageTotals] | None:
    """Per (stage, analysis) of the run, in the pipeline's stage order (unknown
    stages last): its totals; None when the lake has no run_stages table or
    no rows for the run."""
    source = _source(con)
    if source is None:
        return None
    rows = con.execute(_TOTALS_SQL.format(source=source, order=_ORDER, limit=MAX_SERIES + 1),
                       [wall_s, run_id, list(STAGES)]).fetchall()
    return [StageTotals(str(r[0]), None if r[1] is None else str(r[1]), *r[2:])
            for r in rows] or None


def more_stages(totals: list[StageTotals]) -> bool:
    """Whether the run has more stages than MAX_SERIES (stage_totals reads one more)."""
    return len(totals) > MAX_SERIES


_TIMELINE_SQL = """
WITH picked AS (
    SELECT *, epoch(interval_start) - coalesce(CAST(? AS DOUBLE),
        min(epoch(interval_start)) OVER ()) AS t
    FROM ({source}) WHERE run_id = ? AND stage IS NOT NULL AND interval_start IS NOT NULL
        AND list_contains(?, [stage, coalesce(analysis, '')])
), width AS (
    SELECT greatest(max(t + coalesce(interval_s, 0)) / {points}, 1e-6) AS w FROM picked
)
SELECT stage, analysis, min(t), max(t + coalesce(interval_s, 0)), coalesce(sum(interval_s), 0),
    sum(frames_out), sum(busy_s),
    least(sum(busy_s) / nullif(sum(workers * interval_s), 0), 1.0),
    sum(frames_out) / nullif(sum(interval_s), 0)
FROM picked, width GROUP BY stage, analysis, floor(t / w)
ORDER BY {order}, min(t)
"""


def timeline(con: Any, run_id: str, started_at: datetime | None,
             keys: list[tuple[str, str | None]]) -> list[TimelinePoint]:
    """The run's stages `keys` (stage, analysis) over time: at most MAX_POINTS
    buckets each, times in seconds after `started_at` (None: the run's first
    interval); [] without run_stages or interval times."""
    source = _source(con)
    if source is None or not keys:
        return []
    start = started_at.timestamp() if started_at is not None else None
    wanted = [[stage, analysis or ""] for stage, analysis in keys]
    rows = con.execute(_TIMELINE_SQL.format(source=source, points=MAX_POINTS, order=_ORDER),
                       [start, run_id, wanted, list(STAGES)]).fetchall()
    return [TimelinePoint(str(r[0]), None if r[1] is None else str(r[1]), float(r[2]),
                          float(r[3]), float(r[4]), *r[5:]) for r in rows]
