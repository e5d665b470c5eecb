"""Predictions from a lake label table, with DuckDB, at two levels.

Video level: a video's predicted label is the majority label over its rows
(clips in `clip_labels`, frames in `frame_labels`); ties go to the label with
the higher summed score, then to the alphabetically first one, so the result
never depends on row order. Its 5 best labels (video-level top-5) are that
majority label, then the other labels its labelled rows list in
`topk_labels`, ranked by their summed `topk_scores` over those rows (a label
a row does not list adds 0; ties alphabetical). The majority comes first so
that a video right at top-1 is right at top-5. A video none of whose rows has
a label has no prediction. Video-level top-5 needs every labelled row to
carry `topk_scores` of the same length as its `topk_labels`.

Clip level: every row of a truth video is a sample scored against the
video's truth label: its `label` (NULL: missing, counted wrong, top-5
included) and, for top-5, whether the truth is among the first 5 of its
`topk_labels`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from pipeline.errors import ConfigError

LABEL_TABLES = ("clip_labels", "frame_labels")  # in the order `auto` prefers them
TOP_K = 5  # top-5: the first 5 of a row's topk_labels, a video's 5 best labels
_TRUTH_VIEW = "vidlake_evaluation_truth"  # the truth, registered on the connection

# {table} is one of LABEL_TABLES (checked), {version_filter} is empty or a
# parameterised condition: nothing from the user is pasted into the SQL.
_MAJORITY_SQL = """
WITH votes AS (
    -- one row per (video, label): how many rows chose it, and their summed score
    SELECT uri, label, count(*) AS n_rows, sum(coalesce(score, 0)) AS total_score
    FROM {table}
    WHERE label IS NOT NULL {version_filter}
    GROUP BY uri, label
)
SELECT uri, label
FROM votes
QUALIFY row_number() OVER (
    PARTITION BY uri ORDER BY n_rows DESC, total_score DESC, label ASC) = 1
"""


# A video's 5 best labels: its majority label (as in _MAJORITY_SQL), then the
# other labels its labelled rows list, by summed topk_scores (a label a row
# does not list adds 0), ties alphabetical. Only videos with a majority.
_RANKED_SQL = """
WITH scoped AS (
    SELECT uri, label, score, topk_labels, topk_scores FROM {table}
    WHERE label IS NOT NULL {version_filter}
), votes AS (
    SELECT uri, label, count(*) AS n_rows, sum(coalesce(score, 0)) AS total_score
    FROM scoped GROUP BY uri, label
), majority AS (
    SELECT uri, label FROM votes QUALIFY row_number() OVER (
        PARTITION BY uri ORDER BY n_rows DESC, total_score DESC, label ASC) = 1
), listed AS (
    -- DuckDB unnests the two lists in the same SELECT side by side
    SELECT uri, unnest(topk_labels) AS label, unnest(topk_scores) AS label_score FROM scoped
), summed AS (
    SELECT uri, label, sum(coalesce(label_score, 0)) AS total
    FROM listed WHERE label IS NOT NULL GROUP BY uri, label
), ranked AS (
    SELECT uri, label, 1 AS rank FROM majority
    UNION ALL
    SELECT s.uri, s.label, 1 + row_number() OVER (
        PARTITION BY s.uri ORDER BY s.total DESC, s.label ASC) AS rank
    FROM summed s JOIN majority m ON s.uri = m.uri AND s.label <> m.label
)
SELECT uri, label FROM ranked WHERE rank <= {k} ORDER BY uri, rank
"""

# Labelled rows whose topk_scores cannot rank their topk_labels (NULL or of
# another length): one of them and video-level top-5 is not reported.
_UNSCORED_SQL = """
SELECT count(*) FROM {table}
WHERE label IS NOT NULL {version_filter}
  AND (topk_scores IS NULL OR len(topk_scores) IS DISTINCT FROM len(topk_labels))
"""

# Clip level: (truth, predicted) counts over the truth videos' rows, with the
# labelled rows whose truth is among the first k of their topk_labels.
_CLIP_SQL = """
SELECT t.label AS truth, r.label AS predicted, count(*) AS n, {top_k} AS top_k,
       {shortest} AS shortest
FROM {table} r JOIN {truth} t ON r.uri = t.uri
WHERE TRUE {version_filter}
GROUP BY ALL
"""
_TOP_K_HIT = ("coalesce(sum(CASE WHEN r.label IS NOT NULL AND "
              "list_contains(r.topk_labels[1:{k}], t.label) THEN 1 ELSE 0 END), 0)")
_SHORTEST = "min(len(r.topk_labels)) FILTER (WHERE r.label IS NOT NULL)"


def lake_views(con: Any) -> set[str]:
    """Names of the views (lake tables) of a `duckdb_views.connect` connection."""
    return {row[0] for row in con.execute(
        "SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()}


def choose_table(con: Any, requested: str = "auto") -> str:
    """`requested` if the lake has it; for "auto", clip_labels before frame_labels.
    ConfigError when the table is not in the lake."""
    present = lake_views(con)
    candidates = LABEL_TABLES if requested == "auto" else (requested,)
    if requested != "auto" and requested not in LABEL_TABLES:
        raise ConfigError(f"--table must be auto or one of {', '.join(LABEL_TABLES)}, "
                          f"got {requested!r}")
    for table in candidates:
        if table in present:
            return table
    raise ConfigError(f"the lake has no {' or '.join(candidates)} table to evaluate "
                      f"(tables: {', '.join(sorted(present)) or 'none'})")


def model_versions(con: Any, table: str) -> list[str]:
    """Distinct non-null model_version values of `table`, sorted."""
    _check_table(table)
    rows = con.execute(f"SELECT DISTINCT model_version FROM {table} "
                       "WHERE model_version IS NOT NULL ORDER BY 1").fetchall()
    return [row[0] for row in rows]


def resolve_model_version(con: Any, table: str, requested: str | None) -> str | None:
    """The model_version to evaluate: `requested`, or the table's only one.

    Several versions without `requested` is a ConfigError rather than a guess:
    run ids are not ordered in time, so "the latest" cannot be told reliably.
    Returns None when the table holds no version at all (every row is used).
    """
    versions = model_versions(con, table)
    if requested is not None:
        if requested not in versions:
            raise ConfigError(f"--model-version {requested!r} is not in {table} "
                              f"(versions: {', '.join(versions) or 'none'})")
        return requested
    if len(versions) > 1:
        raise ConfigError(f"{table} holds {len(versions)} model versions "
                          f"({', '.join(versions)}); choose one with --model-version")
    return versions[0] if versions else None


def predicted_labels(con: Any, table: str, model_version: str | None = None) -> dict[str, str]:
    """{video uri: majority label} over the rows of `table` (restricted to
    `model_version` unless None); videos whose rows all lack a label are absent."""
    _check_table(table)
    version_filter = "AND model_version = ?" if model_version is not None else ""
    sql = _MAJORITY_SQL.format(table=table, version_filter=version_filter)
    params = [model_version] if model_version is not None else []
    return dict(con.execute(sql, params).fetchall())


def columns(con: Any, table: str) -> set[str]:
    """The column names of `table`."""
    _check_table(table)
    return {row[0] for row in con.execute(f"DESCRIBE {table}").fetchall()}


def has_topk(con: Any, table: str) -> bool:
    """Whether `table` has a topk_labels column (top-5 can be scored)."""
    return "topk_labels" in columns(con, table)


def has_topk_scores(con: Any, table: str, model_version: str | None = None) -> bool:
    """Whether every labelled row (of `model_version` unless None) carries
    topk_scores as long as its topk_labels: video-level top-5 ranks by them."""
    if not {"topk_labels", "topk_scores"} <= columns(con, table):
        return False
    version_filter, params = _version(model_version)
    sql = _UNSCORED_SQL.format(table=table, version_filter=version_filter)
    ((unscored,),) = con.execute(sql, params).fetchall()
    return int(unscored) == 0


def _version(model_version: str | None) -> tuple[str, list[str]]:
    if model_version is None:
        return "", []
    return "AND model_version = ?", [model_version]


def top_labels(con: Any, table: str, model_version: str | None = None,
               k: int = TOP_K) -> dict[str, list[str]]:
    """{video uri: its k best labels, best first} (see the module docstring);
    the first is `predicted_labels`'s. `table` must have topk_labels and
    topk_scores (check `has_topk_scores` first)."""
    _check_table(table)
    version_filter, params = _version(model_version)
    sql = _RANKED_SQL.format(table=table, version_filter=version_filter, k=int(k))
    ranked: dict[str, list[str]] = {}
    for uri, label in con.execute(sql, params).fetchall():
        ranked.setdefault(uri, []).append(label)
    return ranked


@dataclass(frozen=True)
class ClipCounts:
    """Clip-level counts: {(truth, predicted or None): rows} over the truth
    videos' rows; rows of other videos; top-k hits (None: no topk_labels);
    the fewest topk_labels a labelled row holds (None: no such row)."""

    counts: dict[tuple[str, str | None], int]
    ignored: int
    top_k_correct: int | None
    shortest_topk: int | None


def clip_counts(con: Any, table: str, truth: dict[str, str], model_version: str | None = None,
                k: int | None = TOP_K) -> ClipCounts:
    """Every row of `table` (of `model_version` unless None) scored against its
    video's label in `truth`; k None: no top-k (the table lacks topk_labels)."""
    _check_table(table)
    version_filter, params = _version(model_version)
    con.register(_TRUTH_VIEW, pa.table({"uri": pa.array(list(truth), pa.string()),
                                        "label": pa.array(list(truth.values()), pa.string())}))
    try:
        sql = _CLIP_SQL.format(
            table=table, truth=_TRUTH_VIEW, version_filter=version_filter,
            top_k="0" if k is None else _TOP_K_HIT.format(k=int(k)),
            shortest="NULL::BIGINT" if k is None else _SHORTEST)
        rows = con.execute(sql, params).fetchall()
        ((everything,),) = con.execute(
            f"SELECT count(*) FROM {table} WHERE TRUE {version_filter}", params).fetchall()
    finally:
        con.unregister(_TRUTH_VIEW)
    counts = {(t, p): int(n) for t, p, n, _, _ in rows}
    lengths = [int(s) for *_, s in rows if s is not None]
    return ClipCounts(counts, int(everything) - sum(counts.values()),
                      None if k is None else sum(int(hit) for *_, hit, _ in rows),
                      min(lengths) if lengths else None)


def _check_table(table: str) -> None:
    if table not in LABEL_TABLES:  # the name is pasted into SQL: allow known tables only
        raise ConfigError(f"cannot evaluate table {table!r}; use one of {LABEL_TABLES}")
