"""Checkpoint: the commit log folded into one Parquet table.

Reading every commit record at every start costs one GET per commit ever
made. As Delta Lake does, a writer folds the records into a checkpoint,
`LAKE/_commits/checkpoint-<seq>.parquet`, and a reader reads the newest
checkpoint plus the records it does not cover (commit_log.py).

The table is long and narrow: one row per fact, `kind` saying which.

| kind     | key            | value       | commit_id         | other columns          |
|----------|----------------|-------------|-------------------|------------------------|
| commit   | commit id      | run id      |                   |                        |
| unit     | unit id        |             | commit recording it | UnitOutcome's fields |
| done     | video marker   |             | commit finishing it |                      |
| failure  | video marker   | reason      | commit recording it | (in attempt order)   |
| uri      | content key    | uri         |                   |                        |
| started  | content key    |             |                   |                        |
| file     | file (rel)     | file key    | commit publishing it |                       |
| removed  | file (rel)     |             | commit removing it |                       |

`commit` rows name every commit folded in (so a record still in `_commits/`
after its checkpoint is known to be covered); `file` and `removed` rows keep
every file ever published and removed, so readers can hide compacted inputs
and `vidlake check` can tell which commit published a lost file. Retired
markers and units (a repair's) are simply absent, as LakeState forgets them.

Folding works on Arrow columns, never on one Python object per row: a
million-video lake has a few million rows here.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline.errors import one_line
from pipeline.lake.commit_record import CommitRecord, UnitOutcome
from pipeline.lake.lake_state import LakeState

COMMIT, UNIT, DONE, FAILURE, URI, STARTED, FILE, REMOVED = (
    "commit", "unit", "done", "failure", "uri", "started", "file", "removed")
KINDS = (COMMIT, UNIT, DONE, FAILURE, URI, STARTED, FILE, REMOVED)

SCHEMA = pa.schema([
    ("kind", pa.string()),
    ("key", pa.string()),
    ("value", pa.string()),
    ("commit_id", pa.string()),
    ("video_key", pa.string()),
    ("status", pa.string()),
    ("error", pa.string()),
    ("decoder", pa.string()),
    ("decoder_n_frames", pa.int64()),
    ("frames", pa.int64()),
    ("summaries", pa.string()),  # JSON object
])
_UNIT_FIELDS = ("video_key", "status", "error", "decoder", "decoder_n_frames", "frames")


class CheckpointDamaged(ValueError):
    """A checkpoint file that is not a checkpoint (unreadable, wrong columns,
    a kind or a null where none may be)."""


def empty() -> pa.Table:
    return SCHEMA.empty_table()


def split(table: pa.Table) -> dict[str, pa.Table]:
    """The rows of each kind, in table order."""
    kinds = table.column("kind")
    return {kind: table.filter(pc.equal(kinds, kind)) for kind in KINDS}


def _check_kind(part: pa.Table, kind: str) -> pa.Table:
    """`part` (rows said to be of `kind`), checked: CheckpointDamaged if not."""
    if part.num_rows == 0:
        return part
    if "kind" in part.column_names and not pc.all(pc.equal(part.column("kind"), kind)).as_py():
        raise CheckpointDamaged(f"rows filed under {kind!r} are of another kind")
    if part.column("key").null_count:
        raise CheckpointDamaged(f"a {kind} row has no key")
    if kind == UNIT and any(part.column(c).null_count for c in ("video_key", "status")
                            if c in part.column_names):
        raise CheckpointDamaged("a unit row has no video_key or status")
    return part


class Checkpoint:
    """A checkpoint: the rows of each kind, read when first asked for, and only
    the columns asked for. In a file each kind has row groups of its own
    (`to_parquet`), so a run that needs no unit outcomes never decodes them."""

    def __init__(self, read: Callable[[str, list[str] | None], pa.Table]) -> None:
        self._read = read

    @classmethod
    def of_table(cls, table: pa.Table) -> Checkpoint:
        """A checkpoint held as a table (CheckpointDamaged when it cannot be one)."""
        missing = [f.name for f in SCHEMA if f.name not in table.column_names]
        if missing:
            raise CheckpointDamaged(f"columns {missing} are missing")
        try:
            table = table.select(SCHEMA.names).cast(SCHEMA)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise CheckpointDamaged(f"a column has the wrong type ({exc})") from None
        unknown = set(pc.unique(table.column("kind")).to_pylist()) - set(KINDS)
        if unknown:
            raise CheckpointDamaged(f"unknown kinds {sorted(map(str, unknown))}")
        parts = {kind: _check_kind(part, kind) for kind, part in split(table).items()}
        return cls(lambda kind, columns: parts[kind].select(columns or SCHEMA.names))

    @classmethod
    def of_parquet(cls, data: bytes) -> Checkpoint:
        """A checkpoint file's bytes: its footer is checked now (schema, and each
        row group holding one known kind), its rows as they are read."""
        try:
            parquet = pq.ParquetFile(pa.BufferReader(data))
            schema = parquet.schema_arrow
        except (pa.ArrowException, OSError) as exc:
            raise CheckpointDamaged(one_line(f"{type(exc).__name__}: {exc}")) from None
        if not schema.equals(SCHEMA):
            raise CheckpointDamaged(f"its columns are not a checkpoint's ({schema})")
        groups: dict[str, list[int]] = {kind: [] for kind in KINDS}
        for index in range(parquet.num_row_groups):
            stats = parquet.metadata.row_group(index).column(0).statistics
            kind = stats.min if stats is not None and stats.has_min_max else None
            if kind not in groups or stats.max != kind:
                raise CheckpointDamaged(f"row group {index} does not hold one known kind")
            groups[kind].append(index)

        def read(kind: str, columns: list[str] | None) -> pa.Table:
            wanted = list(dict.fromkeys(["kind", "key", *(columns or SCHEMA.names)]))
            try:
                part = parquet.read_row_groups(groups[kind], columns=wanted, use_threads=False)
            except (pa.ArrowException, OSError) as exc:
                raise CheckpointDamaged(one_line(f"{type(exc).__name__}: {exc}")) from None
            return _check_kind(part, kind).select(columns or SCHEMA.names)

        return cls(read)

    def kind(self, kind: str, columns: list[str] | None = None) -> pa.Table:
        """The rows of `kind` (`columns` only, when given); CheckpointDamaged when
        they cannot be read."""
        return self._read(kind, columns)

    def table(self) -> pa.Table:
        return pa.concat_tables([self.kind(kind) for kind in KINDS])


def to_parquet(table: pa.Table) -> bytes:
    """`table` (a checkpoint) as a Parquet file, each kind in row groups of its own."""
    sink = io.BytesIO()
    parts = split(table)
    with pq.ParquetWriter(sink, SCHEMA, compression="zstd") as writer:
        for kind in KINDS:
            if parts[kind].num_rows:
                writer.write_table(parts[kind])
    return sink.getvalue()


EMPTY = Checkpoint.of_table(empty())


def rows(base: Checkpoint, kind: str, columns: list[str] | None = None) -> pa.Table:
    """The rows of one kind."""
    return base.kind(kind, columns)


def commit_ids(base: Checkpoint) -> list[str]:
    """Every commit folded into the checkpoint."""
    return _column(rows(base, COMMIT, ["key"]), "key")


def _column(table: pa.Table, name: str) -> list[Any]:
    return table.column(name).to_pylist()


# -- folding records in ---------------------------------------------------------------
@dataclass
class _Delta:
    """What tail records change, applied in commit-id order: the net facts, and
    the keys whose earlier rows (the checkpoint's) they replace or take back."""

    units: dict[str, tuple[str, UnitOutcome]] = field(default_factory=dict)
    done: dict[str, str] = field(default_factory=dict)  # marker -> commit
    failures: list[tuple[str, str, str]] = field(default_factory=list)  # marker, reason, commit
    uris: dict[str, str] = field(default_factory=dict)
    started: set[str] = field(default_factory=set)
    files: dict[str, tuple[str, str]] = field(default_factory=dict)  # rel -> (key, commit)
    removed: dict[str, str] = field(default_factory=dict)  # rel -> commit
    commits: dict[str, str] = field(default_factory=dict)  # commit -> run
    retired_units: set[str] = field(default_factory=set)
    reset_markers: set[str] = field(default_factory=set)  # earlier facts taken back

    def add(self, record: CommitRecord) -> None:
        cid = record.commit_id
        self.commits[cid] = record.run_id
        for mark in record.retired_markers:
            self.done.pop(mark, None)
            self.failures = [f for f in self.failures if f[0] != mark]
            self.reset_markers.add(mark)
        for unit in record.retired_units:
            self.units.pop(unit, None)
            self.retired_units.add(unit)
        for unit, outcome in record.units.items():
            self.units[unit] = (cid, outcome)
            self.started.add(outcome.video_key)
        self.done.update(dict.fromkeys(record.videos_done, cid))
        self.failures += [(m, reason, cid) for m, reason in record.videos_failed.items()]
        self.uris.update(record.uris)
        for key, rel in record.files.items():
            self.files[rel] = (key, cid)
        self.removed.update(dict.fromkeys(record.removed, cid))

    def table(self) -> pa.Table:
        """The delta's own rows."""
        units = list(self.units.items())
        outcomes = [o for _, (_, o) in units]
        parts = [
            _kind_rows(COMMIT, list(self.commits), value=list(self.commits.values())),
            _kind_rows(UNIT, [u for u, _ in units], commit_id=[c for _, (c, _) in units],
                       **{name: [getattr(o, name) for o in outcomes] for name in _UNIT_FIELDS},
                       summaries=[json.dumps(o.summaries, sort_keys=True) for o in outcomes]),
            _kind_rows(DONE, list(self.done), commit_id=list(self.done.values())),
            _kind_rows(FAILURE, [f[0] for f in self.failures],
                       value=[f[1] for f in self.failures],
                       commit_id=[f[2] for f in self.failures]),
            _kind_rows(URI, list(self.uris), value=list(self.uris.values())),
            _kind_rows(STARTED, sorted(self.started)),
            _kind_rows(FILE, list(self.files), value=[k for k, _ in self.files.values()],
                       commit_id=[c for _, c in self.files.values()]),
            _kind_rows(REMOVED, list(self.removed), commit_id=list(self.removed.values())),
        ]
        return pa.concat_tables(parts)

    def replaced(self, kind: str) -> set[str]:
        """Keys whose checkpoint rows of `kind` this delta replaces or takes back."""
        return {
            UNIT: set(self.units) | self.retired_units,
            DONE: set(self.done) | self.reset_markers,
            FAILURE: self.reset_markers,
            URI: set(self.uris),
            STARTED: self.started,
            FILE: set(self.files),
            REMOVED: set(self.removed),
            COMMIT: set(self.commits),
        }[kind]


def _kind_rows(kind: str, keys: list[str], **columns: list[Any]) -> pa.Table:
    n = len(keys)
    arrays = {"kind": pa.array([kind] * n, pa.string()), "key": pa.array(keys, pa.string())}
    for f in SCHEMA:
        if f.name not in arrays:
            arrays[f.name] = pa.array(columns.get(f.name, [None] * n), f.type)
    return pa.table(arrays, schema=SCHEMA)


def fold(base: Checkpoint, records: Iterable[CommitRecord]) -> pa.Table:
    """The checkpoint of `base` with `records` applied in commit-id order, as
    LakeState.add applies them."""
    delta = _Delta()
    for record in sorted(records, key=lambda r: r.commit_id):
        delta.add(record)
    new = split(delta.table())
    kept = []
    for kind in KINDS:
        part = base.kind(kind)
        replaced = delta.replaced(kind)
        if replaced and part.num_rows:
            part = part.filter(pc.invert(pc.is_in(part.column("key"),
                                                  pa.array(sorted(replaced), pa.string()))))
        kept += [part, new[kind]]
    return pa.concat_tables(kept)


# -- reading it back --------------------------------------------------------------------
def unit_outcomes(units: pa.Table, video_keys: set[str] | None) -> dict[str, UnitOutcome]:
    """Unit id -> outcome of the `unit` rows (of `video_keys` only, when given)."""
    if video_keys is not None:
        units = units.filter(pc.is_in(units.column("video_key"),
                                      pa.array(sorted(video_keys), pa.string())))
    values = [_column(units, name) for name in ("key", *_UNIT_FIELDS, "summaries")]
    return {unit: UnitOutcome(video_key, status, error, decoder, n_frames, frames,
                              {} if summaries == "{}" else json.loads(summaries))
            for unit, video_key, status, error, decoder, n_frames, frames, summaries
            in zip(*values, strict=True)}


def state_of(base: Checkpoint) -> LakeState:
    """The LakeState a checkpoint holds (its unit outcomes read when asked for)."""
    state = LakeState(base_units=lambda keys: unit_outcomes(
        rows(base, UNIT, ["key", *_UNIT_FIELDS, "summaries"]), keys))
    state.videos_done = set(_column(rows(base, DONE, ["key"]), "key"))
    failures = rows(base, FAILURE, ["key", "value"])
    for mark, reason in zip(_column(failures, "key"), _column(failures, "value"), strict=True):
        state.failures.setdefault(mark, []).append(reason)
    uris = rows(base, URI, ["key", "value"])
    state.uris = dict(zip(_column(uris, "key"), _column(uris, "value"), strict=True))
    state.started_videos = set(_column(rows(base, STARTED, ["key"]), "key"))
    return state


def files_of(base: Checkpoint) -> dict[str, tuple[str, str]]:
    """Every file the checkpoint's commits published: rel -> (commit id, file key)."""
    files = rows(base, FILE, ["key", "value", "commit_id"])
    return {rel: (cid, key) for rel, key, cid in zip(
        _column(files, "key"), _column(files, "value"), _column(files, "commit_id"),
        strict=True)}


def removed_of(base: Checkpoint) -> dict[str, str]:
    """Every file the checkpoint's commits removed: rel -> the commit removing it."""
    removed = rows(base, REMOVED, ["key", "commit_id"])
    return dict(zip(_column(removed, "key"), _column(removed, "commit_id"), strict=True))


def records_of(base: Checkpoint) -> dict[str, CommitRecord]:
    """Each folded commit as a record of what the checkpoint still says it did
    (its files, removals, and the units and markers it last recorded): what
    `vidlake check` needs to say which videos a file held."""
    commits = rows(base, COMMIT, ["key", "value"])
    records = {cid: CommitRecord(cid, run) for cid, run in zip(
        _column(commits, "key"), _column(commits, "value"), strict=True)}

    def of(cid: str) -> CommitRecord:
        return records.setdefault(cid, CommitRecord(cid, ""))

    for rel, (cid, key) in files_of(base).items():
        of(cid).files[key] = rel
    for rel, cid in removed_of(base).items():
        of(cid).removed.append(rel)
    outcomes = state_of(base).unit_outcomes
    units = rows(base, UNIT, ["key", "commit_id"])
    for unit, cid in zip(_column(units, "key"), _column(units, "commit_id"), strict=True):
        of(cid).units[unit] = outcomes[unit]
    done = rows(base, DONE, ["key", "commit_id"])
    for mark, cid in zip(_column(done, "key"), _column(done, "commit_id"), strict=True):
        of(cid).videos_done.append(mark)
    failures = rows(base, FAILURE, ["key", "value", "commit_id"])
    for mark, reason, cid in zip(_column(failures, "key"), _column(failures, "value"),
                                 _column(failures, "commit_id"), strict=True):
        of(cid).videos_failed[mark] = reason
    return records
