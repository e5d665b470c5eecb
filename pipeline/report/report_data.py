"""What a run report shows, read from a lake's DuckDB views: the run's row
(with its cost figures and bottleneck verdict, when recorded), failures by
reason, labels per model version, throughput over time, training curves and
the latest evaluation (stage metrics: pipeline/report/stage_data.py). Every
query is bounded (LIMITs and GROUP BYs), so a huge lake gives a small report.

Each reader returns plain data (dataclasses, lists) and None or [] when the
lake lacks the table: the HTML says what is missing, never invents it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pipeline.errors import ConfigError

MAX_REASONS = 20  # failure reasons listed
MAX_EXAMPLES = 3  # example uris per reason
MAX_VERSIONS = 8  # model versions per label table
MAX_LABELS = 15  # labels per model version
MAX_BUCKETS = 30  # time buckets of the throughput chart
MAX_EPOCHS = 500  # training epochs read
MAX_CLASSES = 40  # confusion matrix classes drawn
LABEL_TABLES = ("frame_labels", "clip_labels")
# runs columns added with stage metrics: a lake written before them lacks them
COST_COLUMNS = ("video_hours", "cpu_hours", "gpu_hours", "video_hours_per_cpu_hour",
                "video_hours_per_gpu_hour")


def views(con: Any) -> set[str]:
    """Names of the connection's views (the lake's tables and derived views)."""
    return {r[0] for r in con.execute(
        "SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}


def _columns(con: Any, view: str) -> list[str]:
    return [r[0] for r in con.execute(f"DESCRIBE {view}").fetchall()]


@dataclass(frozen=True)
class RunInfo:
    """One `runs` row, its config parsed."""

    run_id: str
    status: str
    started_at: datetime | None
    finished_at: datetime | None
    counts: dict[str, int]
    wall_s: float | None
    frames_per_s: float | None
    code_version: str
    analyses: list[dict[str, Any]] = field(default_factory=list)
    source: str = ""
    cost: dict[str, float | None] = field(default_factory=dict)  # COST_COLUMNS, None: not recorded
    bottleneck: str | None = None  # the verdict line; None: not recorded


def pick_run(con: Any, lake: str, run_id: str | None) -> RunInfo:
    """The run `run_id`, or the newest; ConfigError when the lake has no runs or
    not that one."""
    if "runs" not in views(con):
        raise ConfigError(f"lake {lake} has no runs table: nothing was labelled yet")
    present = set(_columns(con, "runs"))
    optional = ", ".join(c if c in present else f"NULL AS {c}"
                         for c in (*COST_COLUMNS, "bottleneck"))
    sql = ("SELECT run_id, status, started_at, finished_at, counts, wall_s, frames_per_s, "
           f"code_version, config, {optional} FROM runs ")
    if run_id is None:
        row = con.execute(sql + "ORDER BY run_id DESC LIMIT 1").fetchone()
        if row is None:
            raise ConfigError(f"lake {lake} has no runs")
    else:
        row = con.execute(sql + "WHERE run_id = ? LIMIT 1", [run_id]).fetchone()
        if row is None:
            newest = con.execute("SELECT max(run_id) FROM runs").fetchone()
            raise ConfigError(f"no run {run_id} in lake {lake} (newest: "
                              f"{newest[0] if newest else None})")
    return _run_info(row)


def _run_info(row: tuple[Any, ...]) -> RunInfo:
    run_id, status, started, finished, counts, wall_s, fps, code_version, config = row[:9]
    cost = {c: None if v is None else float(v) for c, v in zip(COST_COLUMNS, row[9:14],
                                                               strict=True)}
    try:
        parsed = json.loads(config or "{}")
    except json.JSONDecodeError:
        parsed = {}
    analyses = parsed.get("analyses") if isinstance(parsed, dict) else None
    return RunInfo(str(run_id), str(status), started, finished,
                   {k: int(v) for k, v in (counts or {}).items() if v is not None},
                   wall_s, fps, str(code_version or ""),
                   [a for a in analyses or [] if isinstance(a, dict)],
                   str(parsed.get("source") or "") if isinstance(parsed, dict) else "",
                   cost, None if row[14] is None else str(row[14]))


@dataclass(frozen=True)
class FailureReason:
    reason: str
    videos: int
    examples: list[str]


def failures(con: Any, run_id: str) -> tuple[list[FailureReason], int]:
    """The run's failed videos grouped by error text, most frequent first (at
    most MAX_REASONS), and how many reasons were left out."""
    if "videos" not in views(con):
        return [], 0
    rows = con.execute(
        "SELECT coalesce(error, '(no reason recorded)') AS reason, count(*) AS n, "
        f"list(uri ORDER BY uri)[1:{MAX_EXAMPLES}] AS examples, count(*) OVER () AS reasons "
        "FROM videos WHERE run_id = ? AND status <> 'ok' GROUP BY ALL "
        f"ORDER BY n DESC, reason LIMIT {MAX_REASONS}", [run_id]).fetchall()
    left = int(rows[0][3]) - len(rows) if rows else 0
    return [FailureReason(str(r[0]), int(r[1]), [str(u) for u in r[2]]) for r in rows], left


@dataclass(frozen=True)
class LabelCounts:
    """The top labels of one model version in one table (rows of this run)."""

    table: str
    model: str
    model_version: str
    rows: int
    labels: list[tuple[str, int]]


def label_distribution(con: Any, run_id: str) -> list[LabelCounts]:
    """Per label table and model version: the run's rows and its top MAX_LABELS labels."""
    out = []
    present = views(con)
    for table in LABEL_TABLES:
        if table not in present:
            continue
        versions = con.execute(
            f"SELECT model_version, any_value(model), count(*) AS n FROM {table} "
            f"WHERE run_id = ? GROUP BY ALL ORDER BY n DESC, model_version "
            f"LIMIT {MAX_VERSIONS}", [run_id]).fetchall()
        for version, model, n in versions:
            labels = con.execute(
                f"SELECT label, count(*) AS n FROM {table} WHERE run_id = ? AND "
                f"model_version IS NOT DISTINCT FROM ? GROUP BY ALL ORDER BY n DESC, label "
                f"LIMIT {MAX_LABELS}", [run_id, version]).fetchall()
            out.append(LabelCounts(table, str(model or ""), str(version or ""), int(n),
                                   [(str(label), int(c)) for label, c in labels]))
    return out


@dataclass(frozen=True)
class Bucket:
    """Videos finished in [start_s, end_s) after the run started, and their frames."""

    start_s: float
    end_s: float
    videos: int
    frames: int

    @property
    def frames_per_s(self) -> float:
        return self.frames / (self.end_s - self.start_s) if self.end_s > self.start_s else 0.0


# When each of the run's videos finished (its last done/failed event) and the
# frames it decoded.
_FINISHED_SQL = """
SELECT epoch(max(s.updated_at)) AS t, any_value(coalesce(v.n_sampled, 0)) AS frames
FROM status_log s LEFT JOIN videos v ON v.uri = s.uri AND v.run_id = s.run_id
    AND v.content_key = s.content_key
WHERE s.run_id = ? AND s.status IN ('done', 'failed', 'quarantined')
GROUP BY s.uri, s.content_key
"""


def throughput(con: Any, run: RunInfo) -> list[Bucket]:
    """The run's finished videos and frames per time bucket (at most MAX_BUCKETS
    equal buckets from its start to its last commit); [] without status_log
    timestamps."""
    if not {"status_log", "videos"} <= views(con) or run.started_at is None:
        return []
    rows = con.execute(_FINISHED_SQL, [run.run_id]).fetchall()
    if not rows:
        return []
    start = run.started_at.timestamp()
    times = [max(0.0, float(t) - start) for t, _ in rows]
    span = max(max(times), 1e-3)
    n = min(MAX_BUCKETS, max(1, len(rows)))
    width = span / n
    videos, frames = [0] * n, [0] * n
    for t, (_, f) in zip(times, rows, strict=True):
        k = min(n - 1, int(t / width))
        videos[k] += 1
        frames[k] += int(f)
    return [Bucket(k * width, (k + 1) * width, videos[k], frames[k]) for k in range(n)]


TRAINING_COLUMNS = ("epoch", "train_loss", "val_loss", "train_acc", "val_acc", "clips_per_s")


def training_metrics(con: Any) -> list[dict[str, Any]]:
    """training_metrics rows (TRAINING_COLUMNS) by epoch; [] when absent."""
    if "training_metrics" not in views(con):
        return []
    rows = con.execute(f"SELECT {', '.join(TRAINING_COLUMNS)} FROM training_metrics "
                       f"ORDER BY epoch LIMIT {MAX_EPOCHS}").fetchall()
    return [dict(zip(TRAINING_COLUMNS, r, strict=True)) for r in rows]


@dataclass(frozen=True)
class Confusion:
    """The latest evaluation: its summary and its confusion counts (rows truth,
    columns predicted; a "(missing)" column for videos without a prediction)."""

    summary: dict[str, Any]
    classes: list[str]
    columns: list[str]
    counts: list[list[int]]
    classes_left_out: int = 0


def _video_level(con: Any, view: str) -> str:
    """The WHERE clause keeping an evaluation table's video-level rows."""
    return "WHERE level = 'video'" if "level" in _columns(con, view) else ""


def confusion(con: Any) -> Confusion | None:
    """The lake's evaluation tables (video level), or None when it has none."""
    if not {"evaluation_summary", "evaluation_confusion"} <= views(con):
        return None
    # video level: tables written before clip level existed have no `level` column
    # and hold video-level rows only
    summary_level = _video_level(con, "evaluation_summary")
    rows = con.execute("SELECT \"table\", model_version, videos, correct, missing, accuracy, "
                       f"truth, evaluated_at FROM evaluation_summary {summary_level} "
                       "LIMIT 1").fetchall()
    names = ("table", "model_version", "videos", "correct", "missing", "accuracy", "truth",
             "evaluated_at")
    summary = dict(zip(names, rows[0], strict=True)) if rows else {}
    pairs = con.execute("SELECT truth, predicted, sum(count) FROM evaluation_confusion "
                        f"{_video_level(con, 'evaluation_confusion')} GROUP BY ALL").fetchall()
    all_classes = sorted({str(t) for t, _, _ in pairs} | {str(p) for _, p, _ in pairs
                                                           if p is not None})
    classes = all_classes[:MAX_CLASSES]
    missing = any(p is None and int(n) for _, p, n in pairs)
    columns = classes + (["(missing)"] if missing else [])
    index = {c: i for i, c in enumerate(columns)}
    counts = [[0] * len(columns) for _ in classes]
    for truth, predicted, n in pairs:
        column = "(missing)" if predicted is None else str(predicted)
        if str(truth) in index and column in index and index[str(truth)] < len(classes):
            counts[index[str(truth)]][index[column]] += int(n)
    return Confusion(summary, classes, columns, counts, len(all_classes) - len(classes))
