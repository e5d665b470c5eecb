"""Per-video predictions from a lake label table, with DuckDB.

A video's predicted label is the majority label over its rows (clips in
`clip_labels`, frames in `frame_labels`); ties go to the label with the higher
summed score, then to the alphabetically first one, so the result never
depends on row order.
"""

from __future__ import annotations

from typing import Any

from pipeline.errors import ConfigError

LABEL_TABLES = ("clip_labels", "frame_labels")  # in the order `auto` prefers them

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


def _check_table(table: str) -> None:
    if table not in LABEL_TABLES:  # the name is pasted into SQL: allow known tables only
        raise ConfigError(f"cannot evaluate table {table!r}; use one of {LABEL_TABLES}")
