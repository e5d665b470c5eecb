"""ParquetLake: tables under LAKE/<table>/ with an exactly-once commit protocol.

A commit of one or more units goes through three steps:

1. stage: each table's rows are written to LAKE/_staging/<commit>/<table>.parquet,
   where no reader looks;
2. commit: LAKE/_commits/<commit>.json is written in one atomic operation
   (rename on local disk, a single PUT on S3). This is the commit point;
3. publish: staged files move to LAKE/<table>/part-<commit>.parquet, or
   LAKE/<table>/model_version=<v>/part-<commit>.parquet for the tables split
   by model version (rename locally; copy-then-delete on S3, where the new
   object appears whole); then the files the record removes (a compaction's
   merged inputs) are deleted.

A crash before step 2 leaves only invisible staging files, and the units run
again; a crash after it is rolled forward by the next run's `recover()`.
Readers therefore see all of a commit's rows in a table or none of them, and
since units listed in a commit record are never run again, no row is ever
written twice.
"""

from __future__ import annotations

import io
import logging
import os
import urllib.parse
import uuid
from collections.abc import Callable

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.lake import checkpoint, commit_log
from pipeline.lake.commit_log import CommitLog
from pipeline.lake.commit_record import CommitRecord
from pipeline.lake.lake_log_reader import COMMITS_DIR, LakeLogReader
from pipeline.lake.schemas import all_tables, partition_column
from pipeline.storage import fs_path, write_local_atomic
from pipeline.storage_problems import storage_errors, storage_problem
from pipeline.storage_retry import with_retries

log = logging.getLogger(__name__)

STAGING_DIR = "_staging"
DAMAGED_DIR = "_damaged"  # where `vidlake check --repair` moves what it cannot read


def parquet_bytes(table: pa.Table) -> bytes:
    """`table` as a zstd-compressed Parquet file, in memory."""
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()


def partitions(name: str, table: pa.Table) -> dict[str, pa.Table]:
    """`table` split by its partition column: file key (the folder under the
    lake root, `frame_labels/model_version=abc`) -> rows; unsplit tables give
    one entry keyed by their name."""
    column = partition_column(name)
    if column is None or column not in table.column_names:
        return {name: table}
    import pyarrow.compute as pc

    parts = {}
    values = table.column(column)
    for value in values.unique().to_pylist():
        if value is None:  # Hive's name for the partition of nulls
            parts[f"{name}/{column}=__HIVE_DEFAULT_PARTITION__"] = table.filter(
                pc.is_null(values))
            continue
        parts[f"{name}/{column}={urllib.parse.quote(str(value), safe='')}"] = table.filter(
            pc.equal(values, value))
    return parts


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """`table` in `schema`'s column order and types; columns it lacks (files
    written before a column was added) become nulls."""
    columns = [table.column(f.name).cast(f.type) if f.name in table.column_names
               else pa.nulls(table.num_rows, f.type) for f in schema]
    return pa.Table.from_arrays(columns, schema=schema)


def _staged_name(file_key: str) -> str:
    """Staging file of a file key (flat: one folder per commit)."""
    return file_key.replace("/", "~") + ".parquet"


def staged_rel(commit_id: str, file_key: str) -> str:
    """Where a commit stages the file it publishes under `file_key`, relative to
    the lake root (a committed one still there awaits `recover()`)."""
    return f"{STAGING_DIR}/{commit_id}/{_staged_name(file_key)}"


class ParquetLake(LakeLogReader):
    """A lake rooted at a local folder or an s3:// prefix: its commit log read
    as LakeLogReader reads it, commits written, recovered, checkpointed."""

    # -- checks --------------------------------------------------------------
    def check_writable(self) -> None:
        """Fail fast (StorageError) unless the lake can be created and written."""
        probe = self._path(STAGING_DIR, f".write-check-{uuid.uuid4().hex}")
        try:
            self._fs.makedirs(self._path(STAGING_DIR), exist_ok=True)
            self._fs.pipe_file(probe, b"ok")
            self._fs.rm_file(probe)
        except storage_errors() as exc:
            raise storage_problem(exc, f"output {self.root!r} is not writable") from None

    # -- checkpoints ---------------------------------------------------------
    def checkpoint(self, found: CommitLog | None = None, *,
                   before_write: Callable[[], None] = lambda: None) -> int:
        """Fold the log into a new checkpoint, then retire the records it covers
        (moved under _commits/_retired/) and checkpoints older than the one
        before it. The caller holds the lake's lock and has run `recover()`.
        Returns the new checkpoint's sequence number (0: nothing to fold).

        Writing the checkpoint is the commit point: a crash before it leaves the
        old log whole; after it, readers skip the covered records still there,
        and the next checkpoint retires them."""
        found = self.log() if found is None else found
        if not found.tail and not found.covered:
            return 0
        seq = found.seq + 1
        name = commit_log.checkpoint_name(seq)
        before_write()
        self._write_atomic(self._path(COMMITS_DIR, name), checkpoint.to_parquet(found.folded()))
        folded = found.commit_ids()
        for old in self._log_names():
            old_seq = commit_log.checkpoint_seq(old)
            if old.endswith(".json") and old[: -len(".json")] in folded:
                self._move(self._path(COMMITS_DIR, old),
                           self._path(COMMITS_DIR, commit_log.RETIRED_DIR, old))
            elif old_seq is not None and old_seq < seq - 1:  # readers may hold seq - 1
                self._remove(self._path(COMMITS_DIR, old))
        log.info("checkpoint %s folds %d commits", name, len(found))
        return seq

    def checkpoint_if_due(self, every: int, *,
                          before_write: Callable[[], None] = lambda: None) -> int:
        """`checkpoint` when the tail holds `every` records or more (0: not due)."""
        found = self.log()
        return self.checkpoint(found, before_write=before_write) if found.due(every) else 0

    def retired(self) -> list[CommitRecord]:
        """The records checkpoints retired (_commits/_retired/), for repairs;
        damaged ones are left out."""
        try:
            listed = with_retries(lambda: self._fs.ls(
                self._path(COMMITS_DIR, commit_log.RETIRED_DIR), detail=False, refresh=True),
                "list the retired commit records", self.retry_s)
        except FileNotFoundError:
            return []
        return self._read_records(sorted(p for p in listed if p.endswith(".json")))[0]

    def absence(self) -> str | None:
        """Why there is no lake at the root (None when there is one): a lake has a
        commit log or a table folder holding a Parquet file."""
        listed = self._top_level()
        if listed is None:
            return "the path does not exist"
        if COMMITS_DIR in listed or any(self.files(name) for name in self.table_names()):
            return None
        return f"no {COMMITS_DIR}/ folder and no table folder with Parquet files"

    def _top_level(self) -> set[str] | None:
        """Names of the entries right under the root; None when it does not exist."""
        try:
            entries = with_retries(lambda: self._fs.ls(fs_path(self.root), detail=False,
                                                       refresh=True),
                                   "list the lake", self.retry_s)
        except FileNotFoundError:
            return None
        return {os.path.basename(e.rstrip("/")) for e in entries}

    # -- recovery ------------------------------------------------------------
    def recover(self, found: CommitLog | None = None) -> int:
        """Finish what interrupted commits left (the caller holds the lake's lock):
        move staged files of recorded commits into place, or drop the staged copy
        when the file is already published (an S3 move is copy, then delete) or
        compacted away since; delete what compactions remove; delete staging of
        commits that never got their record. Returns how many files it touched.

        One listing of the staging area and the tables, not a request per file:
        this runs at every start. Pass `found` to reuse a read of the log
        (recovery never changes it). Only tail records can have staged files:
        a checkpoint is written after recovery, by the lock's holder."""
        found = self.log() if found is None else found
        present = set(self._listed(STAGING_DIR))
        for name in self.table_names():
            present.update(self.files(name))
        removed = found.removed
        touched = 0
        for record in found.tail:
            for key, rel in record.files.items():
                staged = f"{STAGING_DIR}/{record.commit_id}/{_staged_name(key)}"
                if staged not in present:
                    continue
                if rel in present or rel in removed:
                    self._remove(self._path(staged))
                else:
                    self._move(self._path(staged), self._path(rel))
                touched += 1
        for rel in sorted(present.intersection(removed)):
            self._remove(self._path(rel))
            touched += 1
        recorded = found.commit_ids()
        for rel in present:
            parts = rel.split("/")
            if parts[0] == STAGING_DIR and len(parts) > 2 and parts[1] not in recorded:
                self._remove(self._path(rel))  # staged before a crash, never committed
                touched += 1
        if touched:
            log.info("recovered %d files of interrupted commits", touched)
        return touched

    def _listed(self, folder: str) -> list[str]:
        """Every file under LAKE/<folder>, relative to the lake root."""
        base = fs_path(self.root)
        try:
            self._fs.invalidate_cache()
            found = with_retries(lambda: self._fs.find(self._path(folder)),
                                 f"list {folder}", self.retry_s)
        except FileNotFoundError:
            return []
        return [p[len(base):].lstrip("/") for p in found]

    # -- writing -------------------------------------------------------------
    # Every step below is idempotent, so a transient storage error is retried
    # (with_retries) and a step that got through before its answer was lost is
    # not harmed by the second try.
    def _exists(self, path: str) -> bool:
        return with_retries(lambda: self._fs.exists(path), f"look up {path}", self.retry_s)

    def _write_atomic(self, path: str, data: bytes) -> None:
        if self._remote:
            # one PUT: the object appears whole
            with_retries(lambda: self._fs.pipe_file(path, data), f"write {path}", self.retry_s)
            return
        write_local_atomic(path, data)

    def _move(self, src: str, dst: str) -> None:
        if not self._remote:
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            os.replace(src, dst)
            return

        def move() -> None:
            self._fs.invalidate_cache()
            if not self._fs.exists(src) and self._fs.exists(dst):
                return  # an earlier try moved it
            self._fs.mv(src, dst)

        with_retries(move, f"publish {dst}", self.retry_s)

    def _remove(self, path: str) -> None:
        def remove() -> None:
            try:
                self._fs.rm_file(path)
            except FileNotFoundError:
                return  # an earlier try removed it

        with_retries(remove, f"delete {path}", self.retry_s)

    def commit(self, record: CommitRecord, tables: dict[str, pa.Table],
               encoded: dict[str, bytes] | None = None) -> None:
        """Stage, commit and publish `tables` (name -> rows) and `encoded` files
        (file key, a table or partition folder -> Parquet bytes) under `record`,
        then delete the files it removes."""
        files = dict(encoded or {})
        for name, table in tables.items():
            if table.num_rows == 0:
                continue
            schema = all_tables().get(name)
            table = conform(table, schema) if schema is not None else table
            files.update({key: parquet_bytes(rows)
                          for key, rows in partitions(name, table).items()})
        staged: dict[str, str] = {}
        for key, data in files.items():
            path = self._path(STAGING_DIR, record.commit_id, _staged_name(key))
            self._write_atomic(path, data)
            staged[key] = path
            record.files[key] = f"{key}/part-{record.commit_id}.parquet"
        self._write_atomic(self._path(COMMITS_DIR, f"{record.commit_id}.json"), record.to_json())
        for key, path in staged.items():
            self._move(path, self._path(record.files[key]))
        for rel in record.removed:
            self._remove(self._path(rel))
        if not self._remote:
            with_staging = self._path(STAGING_DIR, record.commit_id)
            if os.path.isdir(with_staging):
                os.rmdir(with_staging)

    def file_sizes(self, name: str) -> dict[str, int]:
        """Published Parquet files of table `name` (relative to the lake root) -> bytes."""
        base = fs_path(self.root)
        try:
            # Other processes write here, and s3fs caches listings per folder (its
            # invalidate_cache(path) leaves the subfolders' entries): drop them all.
            self._fs.invalidate_cache()
            found = with_retries(lambda: self._fs.find(self._path(name), detail=True),
                                 f"list table {name}", self.retry_s)
        except FileNotFoundError:
            return {}
        return {p[len(base):].lstrip("/"): int(info.get("size") or 0)
                for p, info in sorted(found.items()) if p.endswith(".parquet")}

    def files(self, name: str) -> list[str]:
        """Published Parquet files of table `name`, relative to the lake root."""
        return list(self.file_sizes(name))

    def live_files(self, name: str, found: CommitLog | None = None) -> dict[str, int]:
        """The files a reader should read (-> bytes): published files, less those
        a compaction merged whose merged file is already in place (after a crash
        between publishing and deleting, both are there until `recover()`).

        The files are listed before the log is read (unless `found` is
        given): a compaction committed in between then shows in the log, and
        its inputs are hidden if its merged file was listed."""
        files = self.file_sizes(name)
        gone = (self.log() if found is None else found).merged_away(set(files))
        return {f: size for f, size in files.items() if f not in gone}

    def listing(self) -> dict[str, dict[str, int]]:
        """Every table's published files (-> bytes), live or not; tables with none too."""
        return {name: self.file_sizes(name) for name in self.table_names()}

    def staged(self) -> set[str]:
        """Every file in the staging area, relative to the lake root."""
        return set(self._listed(STAGING_DIR))

    def snapshot(self, read_log: Callable[[], CommitLog] | None = None,
                 ) -> dict[str, dict[str, int]]:
        """Every table's live files (-> bytes): all listings first, then the log
        (`read_log`, default `log`: a reader may pass one that skips damage)."""
        listed = self.listing()
        found = (read_log or self.log)()
        gone = found.merged_away({f for files in listed.values() for f in files})
        return {name: {f: size for f, size in files.items() if f not in gone}
                for name, files in listed.items() if files}

    def read(self, rel: str, columns: list[str] | None = None) -> pa.Table:
        """One published file's rows (only `columns` when given)."""
        path = self._path(rel)
        return with_retries(lambda: pq.read_table(path, filesystem=self._fs, columns=columns),
                            f"read {rel}", self.retry_s)

    def footer(self, rel: str) -> pq.FileMetaData:
        """One file's Parquet footer (schema, row groups): a ranged read or two.
        pyarrow.ArrowException or OSError when it cannot be read."""
        path = self._path(rel)

        def read() -> pq.FileMetaData:
            with self._fs.open(path, "rb") as handle:
                return pq.ParquetFile(handle).metadata

        return with_retries(read, f"read the footer of {rel}", self.retry_s)

    def move_aside(self, rel: str) -> str:
        """Move a file to LAKE/_damaged/<rel> (kept for inspection, out of every
        listing); returns its new path relative to the root."""
        target = f"{DAMAGED_DIR}/{rel}"
        self._move(self._path(rel), self._path(target))
        return target

    def table_names(self) -> list[str]:
        """Tables this lake may hold: the contract's and any other top-level folder."""
        return sorted(set(all_tables()) | set(self._extra_tables()))

    def tables(self) -> list[str]:
        """Names of the tables that have at least one published file."""
        return [name for name in self.table_names() if self.files(name)]

    def _extra_tables(self) -> list[str]:
        try:
            entries = self._fs.ls(fs_path(self.root), detail=True)
        except FileNotFoundError:
            return []
        return [os.path.basename(e["name"].rstrip("/")) for e in entries
                if e.get("type") == "directory"
                and not os.path.basename(e["name"].rstrip("/")).startswith(("_", "."))]
