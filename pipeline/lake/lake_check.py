"""Check a lake against its commit log (`vidlake check`); lake_repair.py retires
what it finds lost so that the next `vidlake relabel` redoes exactly that.

What the log promises: every file a record publishes is there and readable,
except files some record removed (a compaction's or a repair's inputs). The
check lists the tables once, reads the log once, then reads each live file's
Parquet footer (one or two ranged reads; with `full`, every page too) and
reports, one problem each:

- `damaged-record`: a commit record that is not a CommitRecord's JSON; what
  its commit did is unknown;
- `damaged-checkpoint`: a checkpoint of the log that cannot be read; the
  repair rebuilds it from the older checkpoint and the retired records;
- `missing`: a file a record published that is gone (not merely awaiting
  `recover()` in the staging area);
- `unreadable`: a live file whose footer (or, with `full`, a page) cannot
  be read;
- `tainted`: a merged file holding rows of a commit whose record is damaged
  (a compaction merged them before the record broke).

With each bad file go the videos whose rows it held: the publishing commit's
units and finished videos, and for a merged file those of its inputs'
commits, recursively (a merge takes its inputs from its own partition folder).
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import pyarrow as pa

from pipeline.errors import LakeDamaged, one_line
from pipeline.lake.commit_log import CommitLog, checkpoint_name, checkpoint_seq
from pipeline.lake.commit_record import CommitRecord
from pipeline.lake.lake_state import LakeState, video_key_of
from pipeline.lake.parquet_lake import COMMITS_DIR, ParquetLake, staged_rel
from pipeline.lake.schemas import row_tables

log = logging.getLogger(__name__)

DAMAGED_RECORD, DAMAGED_CHECKPOINT = "damaged-record", "damaged-checkpoint"
MISSING, UNREADABLE, TAINTED = "missing", "unreadable", "tainted"
EVENT_TABLES = ("videos", "status_log")  # one row per finished video marker


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a lake: a record or file (relative to the root), why,
    and the videos (uris) whose rows it held."""

    kind: str
    path: str
    reason: str
    videos: tuple[str, ...] = ()

    def line(self) -> str:
        held = (f"; held rows of {len(self.videos)} videos: {', '.join(self.videos)}"
                if self.videos else "")
        return f"{self.kind} {self.path}: {self.reason}{held}"


@dataclass
class CheckReport:
    """What a check found; `seconds` is its wall time."""

    root: str
    problems: list[Problem]
    records: int
    files: int
    seconds: float
    full: bool = False

    @property
    def healthy(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        """One line: healthy, or how many problems of each kind."""
        scope = (f"{count_of(self.records, 'commit record')}, {count_of(self.files, 'file')} "
                 f"({'read fully' if self.full else 'footers'}) checked in {self.seconds:.3f}s")
        if self.healthy:
            return f"lake {self.root} is healthy: {scope}"
        kinds = Counter(p.kind for p in self.problems)
        found = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
        return (f"lake {self.root} is damaged: {count_of(len(self.problems), 'problem')} "
                f"({found}); {scope}; run vidlake check {self.root} --repair")


def count_of(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


# -- the log, indexed ------------------------------------------------------------------
@dataclass
class LogIndex:
    """The readable commit log, indexed by the files its commits publish and remove."""

    log: CommitLog
    damaged: dict[str, str]
    state: LakeState
    # rel -> (id of the commit publishing it, file key)
    publisher: dict[str, tuple[str, str]] = field(default_factory=dict)
    removed: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, found: CommitLog, damaged: dict[str, str]) -> LogIndex:
        return cls(found, damaged, found.state(), found.publishers, set(found.removed))

    def expected_live(self) -> set[str]:
        """Files the log says are in the lake: published, and not removed since."""
        return set(self.publisher) - self.removed

    def contributors(self, rel: str) -> list[CommitRecord]:
        """The commit that published `rel`, and, when it merged files (compaction,
        repair), the commits of its inputs in the same folder, recursively."""
        found: dict[str, CommitRecord] = {}
        todo = [rel]
        while todo:
            current = todo.pop()
            cid = self.publisher.get(current, ("", ""))[0]
            record = self.log.records.get(cid)
            if record is None or cid in found:
                continue
            found[record.commit_id] = record
            folder = folder_of(current)
            todo.extend(r for r in record.removed if folder_of(r) == folder)
        return list(found.values())

    def merged_inputs(self, rel: str) -> set[str]:
        """Every file merged into `rel`, recursively."""
        return {r for record in self.contributors(rel) for r in record.removed
                if folder_of(r) == folder_of(rel)}

    def held_videos(self, rel: str) -> set[str]:
        """Content keys of the videos whose rows `rel` held: a row table holds its
        commits' units and finished videos, `videos`/`status_log` the latter."""
        table = rel.split("/", 1)[0]
        records = self.contributors(rel)
        finished = {video_key_of(m) for r in records for m in markers_of(r)}
        if table in row_tables():
            return finished | {o.video_key for r in records for o in r.units.values()}
        return finished if table in EVENT_TABLES else set()

    def uris(self, video_keys: Iterable[str]) -> tuple[str, ...]:
        """Uris of content keys (`content:<key>` when no commit finished it)."""
        return tuple(sorted(self.state.uris.get(k, f"content:{k}") for k in set(video_keys)))


def folder_of(rel: str) -> str:
    return rel.rsplit("/", 1)[0]


def markers_of(record: CommitRecord) -> list[str]:
    return [*record.videos_done, *record.videos_failed]


# -- check -----------------------------------------------------------------------------
@dataclass
class _Survey:
    """One look at the lake: its table files (-> bytes), staging area and log."""

    present: dict[str, int]
    staged: set[str]
    index: LogIndex


def read_whole_log(lake: ParquetLake) -> tuple[CommitLog, dict[str, str]]:
    """`lake.read_log()`, with every page of the checkpoint read too (a run reads
    only what it needs); a checkpoint with a bad page counts as damaged and is
    left out."""
    found, damaged = lake.read_log()
    try:
        found.base.table()
    except LakeDamaged as exc:
        damaged[f"{COMMITS_DIR}/{checkpoint_name(found.seq)}"] = str(exc)
        found = CommitLog(tail=found.tail)
    return found, damaged


def _survey(lake: ParquetLake) -> _Survey:
    # listed before the log is read, as readers do (ParquetLake.snapshot)
    present = {rel: size for files in lake.listing().values() for rel, size in files.items()}
    staged = lake.staged()
    return _Survey(present, staged, LogIndex.of(*read_whole_log(lake)))


def is_checkpoint(rel: str) -> bool:
    """True for a checkpoint file of the log (the others are commit records)."""
    return checkpoint_seq(os.path.basename(rel)) is not None


def _missing(survey: _Survey) -> dict[str, str]:
    """Expected files that are gone (-> why); staged ones await `recover()`."""
    index = survey.index
    missing = {}
    for rel in sorted(index.expected_live() - set(survey.present)):
        cid, key = index.publisher[rel]
        if staged_rel(cid, key) not in survey.staged:
            missing[rel] = f"published by commit {cid}, not in the lake"
    return missing


def _unreadable(lake: ParquetLake, rels: Iterable[str], full: bool) -> dict[str, str]:
    """Files whose footer (with `full`: any page) cannot be read (-> why)."""
    bad = {}
    for rel in rels:
        try:
            lake.read(rel) if full else lake.footer(rel)
        except FileNotFoundError:
            continue  # deleted since the listing (a compaction's input): not damage
        except (pa.ArrowException, OSError) as exc:  # truncated, corrupt, not Parquet
            bad[rel] = one_line(f"{type(exc).__name__}: {exc}")
    return bad


def tainted(present: Iterable[str], index: LogIndex, damaged: Iterable[str],
             ) -> dict[str, str]:
    """Live merged files (-> why) with inputs named after the commits of the
    `damaged` records (part-<commit id>.parquet): they hold rows of those commits."""
    parts = {part_name(rel): _commit_of(rel) for rel in damaged if not is_checkpoint(rel)}
    if not parts:
        return {}
    tainted = {}
    for rel in sorted(set(present) - index.removed):
        hit = sorted({parts[os.path.basename(r)] for r in index.merged_inputs(rel)
                      if os.path.basename(r) in parts})
        if hit:
            tainted[rel] = f"merges files of commit(s) {', '.join(hit)}, whose record is damaged"
    return tainted


def _commit_of(record_rel: str) -> str:
    """The commit id of a record file (`_commits/<id>.json`)."""
    return os.path.basename(record_rel)[: -len(".json")]


def part_name(record_rel: str) -> str:
    """The name of the files a record's commit published."""
    return f"part-{_commit_of(record_rel)}.parquet"


def _record_problems(survey: _Survey) -> list[Problem]:
    problems = []
    for rel, reason in sorted(survey.index.damaged.items()):
        if is_checkpoint(rel):
            problems.append(Problem(DAMAGED_CHECKPOINT, rel, f"{reason}; the repair rebuilds "
                                    "it from the older checkpoint and the retired records"))
            continue
        files = sorted(f for f in survey.present if os.path.basename(f) == part_name(rel))
        problems.append(Problem(DAMAGED_RECORD, rel, f"{reason}; what it committed is "
                                f"unknown ({len(files)} files: {', '.join(files) or 'none'})"))
    return problems


def _file_problems(survey: _Survey, kind: str, bad: dict[str, str]) -> list[Problem]:
    index = survey.index
    return [Problem(kind, rel, reason, index.uris(index.held_videos(rel)))
            for rel, reason in sorted(bad.items())]


def check_lake(lake: ParquetLake, *, full: bool = False) -> CheckReport:
    """Compare the lake's files with its commit log (see the module doc). A
    missing file is confirmed by a second look, so a writer committing at the
    same moment does not raise a false alarm."""
    started = time.monotonic()
    survey = _survey(lake)
    missing = _missing(survey)
    if missing:
        survey = _survey(lake)
        missing = {rel: why for rel, why in _missing(survey).items() if rel in missing}
    live = sorted(set(survey.present) - survey.index.removed)
    problems = [*_record_problems(survey),
                *_file_problems(survey, MISSING, missing),
                *_file_problems(survey, UNREADABLE, _unreadable(lake, live, full)),
                *_file_problems(survey, TAINTED, tainted(survey.present, survey.index,
                                                          survey.index.damaged))]
    records = len(survey.index.log) + sum(not is_checkpoint(r) for r in survey.index.damaged)
    return CheckReport(lake.root, problems, records, len(live), time.monotonic() - started,
                       full)
