"""Open a DuckDB connection with one view per lake table, local or on S3, plus
the derived views `video_status`, `latest_videos` and `latest_<table>`.

Table views read the lake's live files (`ParquetLake.live_files`): a snapshot
of what is committed, which stays exact while a compaction is half done.
DuckDB's httpfs extension cannot be downloaded offline, so S3 lakes are read
through the fsspec (s3fs) filesystem registered with DuckDB, and extension
auto-install is switched off so nothing reaches for the network.

The SQL of the derived views is in `derived_views` (and in README), so a data
team can define the same views in DuckDB, Spark or Trino.
"""

from __future__ import annotations

from typing import Any

from pipeline.errors import StorageError
from pipeline.lake.parquet_lake import ParquetLake
from pipeline.storage import StorageOptions, filesystem, is_remote, join, storage_errors

# Tables whose rows belong to one (video content, analysis version).
ROW_TABLES = ("frame_labels", "frame_embeddings", "clip_labels", "detections", "shots")

# The latest event of each (video, output, analysis version).
VIDEO_STATUS = """
SELECT uri, content_key, analysis, model, model_version, analysis_key, status, error,
       attempts, run_id, updated_at
FROM status_log
QUALIFY row_number() OVER (
    PARTITION BY uri, analysis, analysis_key
    ORDER BY run_id DESC, updated_at DESC, status <> 'pending' DESC) = 1
"""

# Each video's newest row: its newest content, as last processed.
LATEST_VIDEOS = """
SELECT * FROM videos
QUALIFY row_number() OVER (PARTITION BY uri ORDER BY run_id DESC) = 1
"""

# The rows of `{table}` for each video's newest content version (the one its
# newest `videos` row names), from the newest analysis version that is done
# for that content. An analysis version is as new as the latest run that
# finished it for the video or asked for it (`runs.outputs`: a relabel that
# rolls back to an older version has nothing to compute, but its runs row
# makes the older version the newest again).
LATEST_ROWS = """
WITH current_content AS (
    SELECT uri, arg_max(content_key, run_id) AS content_key FROM videos GROUP BY uri
), done AS (
    SELECT uri, content_key, analysis_key, max(run_id) AS last_run
    FROM status_log WHERE analysis = '{table}' AND status = 'done' GROUP BY ALL
), asked AS (
    {asked}
), chosen AS (
    SELECT d.uri, d.content_key,
           arg_max(d.analysis_key, greatest(d.last_run, coalesce(a.last_run, ''))) AS analysis_key
    FROM done d JOIN current_content USING (uri, content_key)
    LEFT JOIN asked a USING (analysis_key)
    GROUP BY ALL
)
SELECT t.* FROM {table} t JOIN chosen USING (uri, content_key, analysis_key)
"""

ASKED_FROM_RUNS = """SELECT o.analysis_key, max(run_id) AS last_run
    FROM (SELECT run_id, unnest(outputs) AS o FROM runs) GROUP BY ALL"""
ASKED_NONE = "SELECT NULL::VARCHAR AS analysis_key, NULL::VARCHAR AS last_run WHERE false"


def derived_views(tables: set[str]) -> dict[str, str]:
    """View name -> SQL of the derived views the present `tables` allow."""
    views: dict[str, str] = {}
    if "status_log" in tables:
        views["video_status"] = VIDEO_STATUS
    if "videos" in tables:
        views["latest_videos"] = LATEST_VIDEOS
    if {"videos", "status_log"} <= tables:
        asked = ASKED_FROM_RUNS if "runs" in tables else ASKED_NONE
        for table in ROW_TABLES:
            if table in tables:
                views[f"latest_{table}"] = LATEST_ROWS.format(table=table, asked=asked)
    return views


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def connect(lake_root: str, storage: StorageOptions | None = None) -> Any:
    """A DuckDB connection where each table of the lake is a view of the same
    name, with the derived views beside them."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    if is_remote(lake_root):
        con.register_filesystem(filesystem(lake_root, storage))
    lake = ParquetLake(lake_root, storage, retry_s=0)  # a reader fails fast
    unreadable: tuple[type[BaseException], ...] = (StorageError, *storage_errors())
    try:
        files = lake.snapshot()
    except unreadable as exc:
        raise StorageError(f"cannot read lake {lake_root!r}: {exc}") from None
    present = set()
    for table, sizes in files.items():
        if not sizes:
            continue
        paths = ", ".join(_quote(join(lake.root, rel)) for rel in sizes)
        # hive_partitioning off: model_version comes from the files themselves
        # (the folder name repeats it), typed as written.
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet([{paths}], "
                    "hive_partitioning = false, union_by_name = true)")
        present.add(table)
    for name, sql in derived_views(present).items():
        con.execute(f"CREATE VIEW {name} AS {sql}")
    return con
