"""Open a DuckDB connection with one view per lake table, local or on S3, plus
the derived views `video_status`, `latest_videos` and `latest_<table>`.

Table views read the lake's live files (`ParquetLake.live_files`): a snapshot
of what is committed, which stays exact while a compaction is half done.
DuckDB's httpfs extension cannot be downloaded offline, so S3 lakes are read
through the fsspec (s3fs) filesystem registered with DuckDB, and extension
auto-install is switched off so nothing reaches for the network.

The SQL of the derived views is in `derived_views` (and in docs/tables.md), so a data
team can define the same views in DuckDB, Spark or Trino.

One damaged table never hides the others: each table's view is created on
its own, and a table whose files DuckDB cannot open is left out, with the
derived views that need it; only then are its files' footers read, to name
the bad ones (the happy path reads no footer twice). Damaged commit records
are skipped: readers use the log only to hide a compaction's inputs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from pipeline.errors import StorageError, one_line
from pipeline.lake.commit_log import CommitLog
from pipeline.lake.parquet_lake import ParquetLake
from pipeline.lake.schemas import row_tables
from pipeline.storage import filesystem, is_remote, join
from pipeline.storage_options import StorageOptions
from pipeline.storage_problems import storage_errors

log = logging.getLogger(__name__)


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


# What each derived view reads, besides the table it is named after; a view
# is left out when one of them cannot be read (`runs` included: without it a
# latest view would silently ignore rollbacks).
def _needs(view: str) -> set[str]:
    if view == "video_status":
        return {"status_log"}
    if view == "latest_videos":
        return {"videos"}
    return {view.removeprefix("latest_"), "videos", "status_log", "runs"}


def derived_views(tables: set[str]) -> dict[str, str]:
    """View name -> SQL of the derived views the present `tables` allow."""
    views: dict[str, str] = {}
    if "status_log" in tables:
        views["video_status"] = VIDEO_STATUS
    if "videos" in tables:
        views["latest_videos"] = LATEST_VIDEOS
    if {"videos", "status_log"} <= tables:
        asked = ASKED_FROM_RUNS if "runs" in tables else ASKED_NONE
        for table in row_tables():
            if table in tables:
                views[f"latest_{table}"] = LATEST_ROWS.format(table=table, asked=asked)
    return views


@dataclass
class LakeViews:
    """A DuckDB connection over a lake, and what it had to leave out.

    - `bad_tables`: table -> its unreadable files (relative to the lake root)
      -> why; such a table has no view;
    - `left_out`: derived view -> the bad tables it needs;
    - `damaged_records`: commit record -> why it cannot be read (skipped).
    """

    con: Any
    root: str
    bad_tables: dict[str, dict[str, str]] = field(default_factory=dict)
    left_out: dict[str, list[str]] = field(default_factory=dict)
    damaged_records: dict[str, str] = field(default_factory=dict)

    def warnings(self) -> list[str]:
        """One line per bad table and per damaged commit record."""
        lines = [f"table {table} left out: {self._files(table)}; run vidlake check {self.root}"
                 for table in sorted(self.bad_tables)]
        lines += [f"commit record {rel} skipped: {reason}; run vidlake check {self.root}"
                  for rel, reason in sorted(self.damaged_records.items())]
        return lines

    def why_missing(self, name: str) -> str | None:
        """One line saying why view `name` is missing, when damage is the cause."""
        if name in self.bad_tables:
            return (f"table {name} cannot be read: {self._files(name)}; "
                    f"run vidlake check {self.root}")
        if name in self.left_out:
            bad = self.left_out[name]
            return (f"view {name} is left out: it needs table(s) {', '.join(bad)}, which cannot "
                    f"be read: {'; '.join(self._files(t) for t in bad)}; "
                    f"run vidlake check {self.root}")
        return None

    def _files(self, table: str) -> str:
        return "; ".join(f"{rel} ({reason})" for rel, reason in sorted(
            self.bad_tables[table].items()))


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _read_sql(lake: ParquetLake, rels: list[str]) -> str:
    paths = ", ".join(_quote(join(lake.root, rel)) for rel in rels)
    # hive_partitioning off: model_version comes from the files themselves
    # (the folder name repeats it), typed as written.
    return (f"SELECT * FROM read_parquet([{paths}], hive_partitioning = false, "
            "union_by_name = true)")


def _bad_files(con: Any, lake: ParquetLake, rels: list[str], error: str) -> dict[str, str]:
    """The files of a table whose view DuckDB refused (-> why): footers that
    pyarrow cannot read, else files DuckDB cannot open alone, else DuckDB's word."""
    import duckdb

    bad: dict[str, str] = {}
    for rel in rels:
        try:
            lake.footer(rel)
        except (pa.ArrowException, OSError) as exc:  # truncated, not Parquet, gone
            bad[rel] = one_line(str(exc))
    for rel in rels if not bad else []:
        try:
            con.execute(f"DESCRIBE {_read_sql(lake, [rel])}")
        except duckdb.Error as exc:
            bad[rel] = one_line(str(exc)).split(" LINE 1:")[0]
    return bad or {"(files together)": one_line(error).split(" LINE 1:")[0]}


def _create_table_view(con: Any, lake: ParquetLake, table: str, rels: list[str],
                       ) -> dict[str, str]:
    """Create the view of one table; {} when done, else its bad files (-> why)."""
    import duckdb

    try:
        con.execute(f"CREATE VIEW {table} AS {_read_sql(lake, rels)}")
    except duckdb.Error as exc:
        return _bad_files(con, lake, rels, str(exc))
    return {}


def _readable_log(lake: ParquetLake, damaged: dict[str, str]) -> CommitLog:
    """The commit log as far as it can be read; the rest goes into `damaged`."""
    found, bad = lake.read_log()
    damaged.update(bad)
    return found


def open_lake(lake_root: str, storage: StorageOptions | None = None) -> LakeViews:
    """A DuckDB connection where each readable table of the lake is a view of the
    same name, with the derived views beside them, and what was left out.
    StorageError when the lake cannot be listed."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    if is_remote(lake_root):
        con.register_filesystem(filesystem(lake_root, storage))
    lake = ParquetLake(lake_root, storage, retry_s=0)  # a reader fails fast
    views = LakeViews(con, lake.root)
    unreadable: tuple[type[BaseException], ...] = (StorageError, *storage_errors())
    try:
        files = lake.snapshot(lambda: _readable_log(lake, views.damaged_records))
    except unreadable as exc:
        raise StorageError(f"cannot read lake {lake_root!r}: {exc}") from None
    present = set()
    for table, sizes in files.items():
        bad = _create_table_view(con, lake, table, list(sizes)) if sizes else {}
        if bad:
            views.bad_tables[table] = bad
        elif sizes:
            present.add(table)
    for name, sql in derived_views(present | set(views.bad_tables)).items():
        missing = sorted(_needs(name) & set(views.bad_tables))
        if missing:
            views.left_out[name] = missing
        else:
            con.execute(f"CREATE VIEW {name} AS {sql}")
    return views


def connect(lake_root: str, storage: StorageOptions | None = None) -> Any:
    """A DuckDB connection where each table of the lake is a view of the same
    name, with the derived views beside them; what damage left out is logged."""
    views = open_lake(lake_root, storage)
    for line in views.warnings():
        log.warning("%s", line)
    return views.con


def require_lake(lake_root: str, storage: StorageOptions | None = None) -> None:
    """StorageError `no lake at PATH (why)` unless a lake is there."""
    lake = ParquetLake(lake_root, storage, retry_s=0)
    unreachable: tuple[type[BaseException], ...] = (StorageError, *storage_errors())
    try:
        absence = lake.absence()
    except unreachable as exc:
        raise StorageError(f"cannot read lake {lake_root!r}: {exc}") from None
    if absence:
        raise StorageError(f"no lake at {lake_root} ({absence})")
