"""Compaction: merge a partition's small Parquet files into files of about a
target size, without changing any query result.

Every commit publishes one file per table partition, so a nightly relabel
leaves many small files behind (a run commits every 5 s). Compaction works
one partition folder at a time (`LAKE/<table>/` or
`LAKE/<table>/model_version=<v>/`): it reads a bin of small files, writes
their rows as one file, and commits that through the lake's protocol with
the inputs listed in `removed`. The commit record is the commit point:

- a crash before it leaves a staged file nobody reads;
- a crash after it and before the inputs are deleted leaves both, and
  readers that go through `ParquetLake.live_files` (`vidlake query`) read
  the merged file only; the next `recover()` deletes the inputs.

Rows are copied, never changed, so every query gives the same result
before and after: a file with a column the contract lacks (written by a
newer vidlake or another tool) or of another type would lose data when
conformed to the contract, so it is left as it is. Which units and videos
are done lives in the commit log, not in the files, so compaction never
makes work run again.

A file that cannot be read (a truncated or corrupt Parquet file) is left
where it is and reported in `CompactionResult.skipped`; the rest of its
partition is compacted. `vidlake check` says what it held.
"""

from __future__ import annotations

import io
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.lake.commit_log import CommitLog
from pipeline.lake.commit_record import CommitRecord
from pipeline.lake.parquet_lake import ParquetLake, conform
from pipeline.lake.schemas import all_tables, partition_column

log = logging.getLogger(__name__)

DEFAULT_TARGET_BYTES = 128 << 20  # a Spark/Trino-friendly file size
SMALL_SHARE = 0.5  # files under half the target are worth merging
ROW_GROUP_ROWS = 1 << 20  # rows per row group of a merged file (pyarrow's default)


@dataclass
class CompactionResult:
    """What a compaction did: partitions touched, files merged away and written."""

    partitions: int = 0
    files_removed: int = 0
    files_written: int = 0
    bytes_merged: int = 0
    skipped: dict[str, str] = field(default_factory=dict)  # unreadable file -> why


def _folder(rel: str) -> str:
    return rel.rsplit("/", 1)[0]


def small_files(lake: ParquetLake, table: str, target_bytes: int,
                found: CommitLog) -> dict[str, dict[str, int]]:
    """Partition folder -> its small live files (-> bytes), oldest commit first."""
    folders: dict[str, dict[str, int]] = {}
    for rel, size in lake.live_files(table, found).items():
        if size < target_bytes * SMALL_SHARE:
            folders.setdefault(_folder(rel), {})[rel] = size
    return folders


def bins(files: dict[str, int], target_bytes: int) -> list[list[str]]:
    """Consecutive files packed into groups of about `target_bytes` (by their
    compressed size, which merged files roughly keep); groups of one are left."""
    groups: list[list[str]] = []
    current: list[str] = []
    total = 0
    for rel, size in files.items():
        if current and total + size > target_bytes:
            groups.append(current)
            current, total = [], 0
        current.append(rel)
        total += size
    groups.append(current)
    return [g for g in groups if len(g) > 1]


def compact_lake(lake: ParquetLake, *, target_bytes: int = DEFAULT_TARGET_BYTES,
                 min_files: int = 2, tables: list[str] | None = None,
                 before_commit: Callable[[], None] = lambda: None) -> CompactionResult:
    """Compact every partition folder holding at least `min_files` small files,
    then checkpoint the commit log (`before_commit` runs before each write). The
    caller holds the lake's lock and has run `recover()`."""
    result = CompactionResult()
    found = lake.log()
    for table in tables or sorted(all_tables()):
        for folder, files in small_files(lake, table, target_bytes, found).items():
            if len(files) < min_files:
                continue
            merged_files = written = 0
            for group in bins(files, target_bytes):
                merged = _merge(lake, table, group, before_commit, result.skipped)
                if not merged:
                    continue
                result.files_removed += len(merged)
                result.files_written += 1
                result.bytes_merged += sum(files[rel] for rel in merged)
                merged_files += len(merged)
                written += 1
            if written:
                result.partitions += 1
                log.info("compacted %s: %d files into %d", folder, merged_files, written)
    if result.files_written:
        lake.checkpoint(before_write=before_commit)
    return result


def _kept(column: pa.Field, schema: pa.Schema) -> bool:
    """True when conforming to `schema` keeps this column's values: the contract
    has it, with the same type (columns a file lacks become nulls, as readers see them)."""
    return column.name in schema.names and schema.field(column.name).type.equals(column.type)


def _readable(lake: ParquetLake, rel: str, skipped: dict[str, str]) -> pa.Table | None:
    """The rows of `rel`, or None (and the reason in `skipped`) when it cannot be read."""
    try:
        return lake.read(rel)
    except (pa.ArrowException, OSError) as exc:  # truncated, corrupt, not Parquet
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())
        log.warning("not compacting %s: it cannot be read (%s); run vidlake check %s",
                    rel, reason, lake.root)
        skipped[rel] = reason
        return None


def _merge(lake: ParquetLake, table: str, group: list[str],
           before_commit: Callable[[], None], skipped: dict[str, str]) -> list[str]:
    """Merge `group` into one file, less the files outside the contract and those
    that cannot be read (added to `skipped`); the files merged away (none when
    fewer than two are left).

    The inputs are read one at a time and written as row groups of about
    ROW_GROUP_ROWS rows, so memory holds one row group and the compressed
    output, not the whole bin's rows (a bin of 128 MiB of compressed Parquet
    is several GiB of rows). Files from before partitioning (directly under a
    partitioned table's folder) are split into partitions by the commit."""
    schema = all_tables()[table]
    if partition_column(table) and _folder(group[0]) == table:
        return _merge_unpartitioned(lake, table, group, before_commit, skipped)
    merged: list[str] = []
    pending: list[pa.Table] = []
    sink = io.BytesIO()
    with pq.ParquetWriter(sink, schema, compression="zstd") as writer:
        for rel in group:
            rows = _contract_rows(lake, table, rel, skipped)
            if rows is None:
                continue
            merged.append(rel)
            pending.append(rows)
            if sum(t.num_rows for t in pending) >= ROW_GROUP_ROWS:
                writer.write_table(pa.concat_tables(pending))
                pending = []
        if pending:
            writer.write_table(pa.concat_tables(pending))
    if len(merged) < 2:
        return []
    before_commit()
    lake.commit(_record(merged), {}, encoded={_folder(group[0]): sink.getvalue()})
    return merged


def _record(merged: list[str]) -> CommitRecord:
    """The record of a compaction removing `merged`."""
    commit_id = f"compact-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
    return CommitRecord(commit_id=commit_id, run_id=commit_id, removed=merged)


def _contract_rows(lake: ParquetLake, table: str, rel: str,
                   skipped: dict[str, str]) -> pa.Table | None:
    """A file's rows in the table's contract; None when it cannot be read (in
    `skipped`) or has columns the contract would lose (logged)."""
    schema = all_tables()[table]
    rows = _readable(lake, rel, skipped)
    if rows is None:
        return None
    odd = [f"{f.name} ({f.type})" for f in rows.schema if not _kept(f, schema)]
    if odd:
        log.warning("not compacting %s: columns %s are not in the %s contract as they are, "
                    "and merging would lose them", rel, ", ".join(odd), table)
        return None
    return conform(rows, schema)


def _merge_unpartitioned(lake: ParquetLake, table: str, group: list[str],
                         before_commit: Callable[[], None], skipped: dict[str, str],
                         ) -> list[str]:
    """`_merge` for files of the old layout, held in memory and split by the commit."""
    parts = {rel: rows for rel in group
             if (rows := _contract_rows(lake, table, rel, skipped)) is not None}
    if len(parts) < 2:
        return []
    before_commit()
    lake.commit(_record(list(parts)), {table: pa.concat_tables(parts.values())})
    return list(parts)
