"""Reading a lake's commit log (LAKE/_commits/): the newest readable
checkpoint and the records it does not cover, listed once, fetched together,
read again when a writer's checkpoint retires records under the read.
ParquetLake (parquet_lake.py) builds its commits, recovery and checkpoints
on this.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import pyarrow as pa

from pipeline.errors import LakeDamaged, StorageError
from pipeline.lake import checkpoint, commit_log
from pipeline.lake.commit_log import CommitLog
from pipeline.lake.commit_record import CommitRecord, RecordDamaged
from pipeline.lake.lake_state import LakeState
from pipeline.storage import filesystem, fs_path, is_remote, join
from pipeline.storage_options import StorageOptions
from pipeline.storage_retry import RETRY_BUDGET_S, with_retries

log = logging.getLogger(__name__)

COMMITS_DIR = "_commits"
_LOG_READ_TRIES = 5


class _LogMoved(Exception):
    """A file of the commit log went between listing it and reading it."""


def damaged_message(root: str, damaged: dict[str, str]) -> str:
    """One line naming the damaged commit records and what to run."""
    named = "; ".join(f"{rel}: {reason}" for rel, reason in sorted(damaged.items()))
    return (f"the commit log of lake {root!r} is damaged ({named}); "
            f"run vidlake check {root} --repair").replace("\n", " ")


class LakeLogReader:
    """A lake's commit log, read: the newest readable checkpoint and the
    records after it (ParquetLake adds writing)."""

    def __init__(self, root: str, storage: StorageOptions | None = None, *,
                 retry_s: float = RETRY_BUDGET_S) -> None:
        """`retry_s`: how long transient storage errors are retried (writers ride
        out a restarting store; readers such as `vidlake query` fail fast with 0)."""
        self.retry_s = retry_s
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

    # -- reading state -------------------------------------------------------
    def _log_names(self) -> list[str]:
        """Names of the files right under LAKE/_commits/."""
        try:
            # refresh: other processes commit too, and s3fs caches listings
            listed = with_retries(
                lambda: self._fs.ls(self._path(COMMITS_DIR), detail=False, refresh=True),
                "list the commit log", self.retry_s)
        except FileNotFoundError:
            return []
        return sorted(os.path.basename(p.rstrip("/")) for p in listed)

    def has_commits(self) -> bool:
        """Whether the commit log holds any record or checkpoint (one listing). A
        lake without one has every video still to do: a run into it cannot be a
        no-op."""
        return any(n.endswith(".json") or commit_log.checkpoint_seq(n)
                   for n in self._log_names())

    def read_log(self) -> tuple[CommitLog, dict[str, str]]:
        """The commit log: the newest readable checkpoint and the records it does
        not cover; and what is damaged: file (relative to the lake root) -> what
        is wrong with it. Readers skip damage; writers must not (see `log`).

        A writer checkpointing meanwhile retires records this read listed: the
        read then starts again, so it sees the log before or after, never half."""
        for _ in range(_LOG_READ_TRIES):
            try:
                return self._read_log_once()
            except _LogMoved:
                continue
        raise StorageError(f"the commit log of lake {self.root!r} changed under every one of "
                           f"{_LOG_READ_TRIES} reads (writers checkpointing); try again")

    def _read_log_once(self) -> tuple[CommitLog, dict[str, str]]:
        names = self._log_names()
        damaged: dict[str, str] = {}
        found = CommitLog()
        checkpoints = [(seq, n) for n in names if (seq := commit_log.checkpoint_seq(n))]
        for seq, name in sorted(checkpoints, reverse=True):  # the newest readable one
            try:
                found.base = self._read_checkpoint(name)
            except checkpoint.CheckpointDamaged as exc:
                damaged[f"{COMMITS_DIR}/{name}"] = str(exc)
                continue
            found.seq = seq
            break
        covered = found.base_ids
        paths = []
        for name in names:
            if name.endswith(".json"):
                if name[: -len(".json")] in covered:
                    found.covered.append(name)
                else:
                    paths.append(self._path(COMMITS_DIR, name))
        found.tail, bad = self._read_records(paths)
        damaged.update(bad)
        return found, damaged

    def _read_checkpoint(self, name: str) -> checkpoint.Checkpoint:
        """One checkpoint (one GET; its rows are decoded as they are asked for):
        CheckpointDamaged when it is not one, _LogMoved when it is gone (retired
        since the listing)."""
        path = self._path(COMMITS_DIR, name)
        try:
            data = with_retries(lambda: self._fs.cat_file(path), f"read {name}", self.retry_s)
        except FileNotFoundError:
            raise _LogMoved from None
        read = checkpoint.Checkpoint.of_parquet(data).kind

        def checked(kind: str, columns: list[str] | None) -> pa.Table:
            try:
                return read(kind, columns)
            except checkpoint.CheckpointDamaged as exc:  # a page, found when first read
                rel = f"{COMMITS_DIR}/{name}"
                raise LakeDamaged(damaged_message(self.root, {rel: str(exc)})) from None

        return checkpoint.Checkpoint(checked)

    def _read_records(self, paths: list[str]) -> tuple[list[CommitRecord], dict[str, str]]:
        """The records at `paths` in commit-id order, and the damaged ones (-> why)."""
        if not paths:
            return [], {}

        def fetch() -> dict[str, Any]:
            blobs = self._fs.cat(paths, on_error="return")  # concurrent GETs on S3
            for blob in blobs.values():  # raised here, a transient error is retried
                if isinstance(blob, BaseException) and not isinstance(blob, FileNotFoundError):
                    raise blob
            return blobs

        blobs = with_retries(fetch, "read the commit log", self.retry_s)
        records: list[CommitRecord] = []
        damaged: dict[str, str] = {}
        for path in paths:
            name = os.path.basename(path)
            blob = blobs.get(path)
            if not isinstance(blob, bytes):
                raise _LogMoved  # retired by a checkpoint since the listing
            try:
                record = CommitRecord.from_json(blob)
            except RecordDamaged as exc:
                damaged[f"{COMMITS_DIR}/{name}"] = str(exc)
                continue
            if f"{record.commit_id}.json" != name:  # records are written as <id>.json
                damaged[f"{COMMITS_DIR}/{name}"] = f"holds commit {record.commit_id!r}"
                continue
            records.append(record)
        return sorted(records, key=lambda r: r.commit_id), damaged

    def log(self) -> CommitLog:
        """The commit log. LakeDamaged when part of it cannot be read: what is
        done is then unknown, so nothing may plan or commit."""
        found, damaged = self.read_log()
        if damaged:
            raise LakeDamaged(damaged_message(self.root, damaged))
        return found

    def state(self) -> LakeState:
        """Every commit applied in order: finished units, finished and failed
        videos (LakeDamaged when the log is damaged)."""
        return self.log().state()
