"""ParquetLake: tables under LAKE/<table>/ with an exactly-once commit protocol.

A commit of one or more units goes through three steps:

1. stage: each table's rows are written to LAKE/_staging/<commit>/<table>.parquet,
   where no reader looks;
2. commit: LAKE/_commits/<commit>.json is written in one atomic operation
   (rename on local disk, a single PUT on S3). This is the commit point;
3. publish: staged files move to LAKE/<table>/part-<commit>.parquet (rename
   locally; copy-then-delete on S3, where the new object appears whole).

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
import uuid
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.errors import StorageError
from pipeline.lake.commit_record import CommitRecord, UnitOutcome
from pipeline.lake.schemas import TABLES
from pipeline.storage import (
    StorageOptions,
    filesystem,
    fs_path,
    is_remote,
    join,
    storage_errors,
    write_local_atomic,
)

log = logging.getLogger(__name__)

COMMITS_DIR = "_commits"
STAGING_DIR = "_staging"


def parquet_bytes(table: pa.Table) -> bytes:
    """`table` as a zstd-compressed Parquet file, in memory."""
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()


@dataclass
class LakeState:
    """What earlier commits say is done."""

    unit_outcomes: dict[str, UnitOutcome] = field(default_factory=dict)
    videos_done: set[str] = field(default_factory=set)


class ParquetLake:
    """A lake rooted at a local folder or an s3:// prefix."""

    def __init__(self, root: str, storage: StorageOptions | None = None) -> None:
        self.root = root.rstrip("/")
        self.storage = storage or StorageOptions()
        self._fs = filesystem(self.root, self.storage)
        self._remote = is_remote(self.root)

    # -- paths ---------------------------------------------------------------
    def _path(self, *parts: str) -> str:
        return join(fs_path(self.root), *parts)

    def table_uri(self, table: str) -> str:
        """URI of a table's folder, for readers (DuckDB, Spark)."""
        return join(self.root, table)

    # -- checks --------------------------------------------------------------
    def check_writable(self) -> None:
        """Fail fast (StorageError) unless the lake can be created and written."""
        probe = self._path(STAGING_DIR, f".write-check-{uuid.uuid4().hex}")
        try:
            self._fs.makedirs(self._path(STAGING_DIR), exist_ok=True)
            self._fs.pipe_file(probe, b"ok")
            self._fs.rm_file(probe)
        except PermissionError as exc:
            raise StorageError(f"output {self.root!r} is not writable: permission denied "
                               f"({exc}); choose another --output or fix its permissions") from None
        except storage_errors() as exc:
            raise StorageError(f"output {self.root!r} is not writable: {exc}") from None

    # -- reading state -------------------------------------------------------
    def _commit_paths(self) -> list[str]:
        try:
            return sorted(p for p in self._fs.ls(self._path(COMMITS_DIR), detail=False)
                          if p.endswith(".json"))
        except FileNotFoundError:
            return []

    def _records(self) -> list[CommitRecord]:
        paths = self._commit_paths()
        if not paths:
            return []
        blobs = self._fs.cat(paths)  # concurrent GETs on S3
        return [CommitRecord.from_json(blobs[p]) for p in paths]

    def state(self) -> LakeState:
        """Union of every commit record: finished units and finished videos."""
        state = LakeState()
        for record in self._records():
            state.unit_outcomes.update(record.units)
            state.videos_done.update(record.videos_done)
        return state

    # -- recovery ------------------------------------------------------------
    def recover(self) -> int:
        """Publish files of commits whose publish step was interrupted; returns
        how many files were moved."""
        moved = 0
        for record in self._records():
            for table, rel in record.files.items():
                final = self._path(rel)
                staged = self._path(STAGING_DIR, record.commit_id, f"{table}.parquet")
                if not self._fs.exists(final) and self._fs.exists(staged):
                    self._move(staged, final)
                    moved += 1
        if moved:
            log.info("recovered %d table files of interrupted commits", moved)
        return moved

    # -- writing -------------------------------------------------------------
    def _write_atomic(self, path: str, data: bytes) -> None:
        if self._remote:
            self._fs.pipe_file(path, data)  # one PUT: the object appears whole
            return
        write_local_atomic(path, data)

    def _move(self, src: str, dst: str) -> None:
        if self._remote:
            self._fs.mv(src, dst)
        else:
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            os.replace(src, dst)

    def commit(self, record: CommitRecord, tables: dict[str, pa.Table]) -> None:
        """Stage, commit and publish `tables` (name -> rows) under `record`."""
        staged: dict[str, str] = {}
        for name, table in tables.items():
            if table.num_rows == 0:
                continue
            table = table.cast(TABLES[name]) if name in TABLES else table
            path = self._path(STAGING_DIR, record.commit_id, f"{name}.parquet")
            self._write_atomic(path, parquet_bytes(table))
            staged[name] = path
            record.files[name] = f"{name}/part-{record.commit_id}.parquet"
        self._write_atomic(self._path(COMMITS_DIR, f"{record.commit_id}.json"), record.to_json())
        for name, path in staged.items():
            self._move(path, self._path(record.files[name]))
        if not self._remote:
            with_staging = self._path(STAGING_DIR, record.commit_id)
            if os.path.isdir(with_staging):
                os.rmdir(with_staging)

    def tables(self) -> list[str]:
        """Names of the tables that have at least one published file."""
        found = []
        for name in sorted(TABLES) + self._extra_tables():
            try:
                if any(p.endswith(".parquet") for p in self._fs.find(self._path(name))):
                    found.append(name)
            except FileNotFoundError:
                continue
        return sorted(set(found))

    def _extra_tables(self) -> list[str]:
        try:
            entries = self._fs.ls(fs_path(self.root), detail=True)
        except FileNotFoundError:
            return []
        return [os.path.basename(e["name"].rstrip("/")) for e in entries
                if e.get("type") == "directory"
                and not os.path.basename(e["name"].rstrip("/")).startswith(("_", "."))]
