"""Repair what `vidlake check` finds (`vidlake check --repair`).

A repair (the caller holds the lake's lock) sets damaged records and their
files aside under LAKE/_damaged/ (nothing is deleted: their units are then
unknown to the log and run again), moves unreadable and tainted files there
too, and writes one commit that:

- retires the markers whose rows were lost (row tables: the analysis keys that
  write to the file's table, as `status_log` and `runs.outputs` name them, of
  the videos it held; `videos`/`status_log`: the markers its commits finished)
  and every unit of those videos, so they run again;
- removes, from the other live files of the row tables, the rows of those
  videos under any marker that is no longer done (each such file is rewritten
  without them, as compaction does), so the redo writes every row once;
- lists the lost, moved and rewritten files in `removed`, so the log and the
  files agree again.

A missing or unreadable `runs` (or unknown) table file is only reported and
dropped from the log: no work is redone for it.
"""

from __future__ import annotations

import logging
import os
import re
import time
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.errors import StorageError, one_line
from pipeline.lake.commit_log import CommitLog
from pipeline.lake.commit_record import CommitRecord
from pipeline.lake.lake_check import (
    EVENT_TABLES,
    MISSING,
    TAINTED,
    UNREADABLE,
    LogIndex,
    check_lake,
    count_of,
    folder_of,
    is_checkpoint,
    markers_of,
    part_name,
    read_whole_log,
    tainted,
)
from pipeline.lake.lake_state import video_key_of
from pipeline.lake.parquet_lake import ParquetLake, conform
from pipeline.lake.schemas import all_tables, partition_column, row_tables

log = logging.getLogger(__name__)

_STAMPED = re.compile(r"^\d{8}T\d{6}Z-")  # commit ids of runs: new_run_id()'s UTC stamp


@dataclass
class RepairResult:
    """What a repair did: files set aside (paths under LAKE/_damaged/), markers
    and units retired, files rewritten and rows dropped from them, its commit."""

    records_set_aside: int = 0
    moved: list[str] = field(default_factory=list)
    retired_markers: list[str] = field(default_factory=list)
    retired_units: list[str] = field(default_factory=list)
    rewritten: list[str] = field(default_factory=list)
    rows_dropped: int = 0
    dropped_files: list[str] = field(default_factory=list)  # only taken out of the log
    commit_id: str | None = None

    def summary(self) -> str:
        """One line: what was set aside, retired and rewritten (the next relabel
        redoes the retired markers and the units of set-aside records)."""
        return (f"repaired: {count_of(len(self.moved), 'file')} set aside under _damaged/ "
                f"({count_of(self.records_set_aside, 'damaged commit record')}), "
                f"{count_of(len(self.retired_markers), 'video marker')} and "
                f"{count_of(len(self.retired_units), 'unit')} retired, "
                f"{count_of(self.rows_dropped, 'row')} of those videos dropped from "
                f"{count_of(len(self.rewritten), 'rewritten file')}"
                + (f", {count_of(len(self.dropped_files), 'lost file')} of runs or other tables "
                   f"only taken out of the log" if self.dropped_files else "")
                + (f" (commit {self.commit_id})" if self.commit_id else "")
                + "; the next vidlake relabel with the same analyses redoes what was lost")


def repair_lake(lake: ParquetLake, *, full: bool = False,
                before_commit: Callable[[], None] = lambda: None) -> RepairResult:
    """Repair what `check_lake` finds (see the module doc). The caller holds the
    lake's lock; `before_commit` runs before the repair's commit (the lock's check)."""
    result = RepairResult()
    found, damaged = read_whole_log(lake)
    if any(is_checkpoint(rel) for rel in damaged):
        result.moved += rebuild_checkpoint(lake, damaged, before_commit)
        found, damaged = lake.read_log()
    result.moved += _set_aside_records(lake, damaged)
    result.records_set_aside = len(damaged)
    lake.recover(found)
    index = LogIndex.of(found, {})
    report = check_lake(lake, full=full)
    bad = {p.path: p.kind for p in report.problems if p.kind in (MISSING, UNREADABLE)}
    present = {rel for files in lake.listing().values() for rel in files}
    for rel in tainted(present, index, damaged):
        bad.setdefault(rel, TAINTED)
    if not bad:
        return result
    result.moved += [lake.move_aside(rel) for rel, kind in sorted(bad.items()) if kind != MISSING]
    videos = _retire(lake, index, sorted(bad), result)
    after = found.state()
    after.retire(result.retired_markers, result.retired_units)
    tables = _rewrites(lake, index, set(bad), videos, after.videos_done, result)
    commit_id = repair_commit_id(found)
    record = CommitRecord(commit_id=commit_id, run_id=commit_id,
                          removed=sorted(set(bad) | set(result.rewritten)),
                          retired_markers=result.retired_markers,
                          retired_units=result.retired_units)
    before_commit()
    lake.commit(record, tables)
    result.commit_id = commit_id
    wait_past(commit_id)
    return result


def rebuild_checkpoint(lake: ParquetLake, damaged: dict[str, str],
                       before_write: Callable[[], None]) -> list[str]:
    """Set the damaged checkpoints aside and write one rebuilt from the newest
    readable older checkpoint, the retired records it does not hold and the
    records in the log; files named after commits the rebuilt log does not
    know (their records were pruned from _commits/_retired/) are set aside too,
    so their units run again rather than twice. Returns what was moved."""
    moved = [lake.move_aside(rel) for rel in sorted(damaged) if is_checkpoint(rel)]
    found, _ = lake.read_log()
    known = found.commit_ids()
    found.tail = sorted([*found.tail, *(r for r in lake.retired() if r.commit_id not in known)],
                        key=lambda r: r.commit_id)
    lake.checkpoint(found, before_write=before_write)
    known = found.commit_ids()
    for rel in sorted(rel for files in lake.listing().values() for rel in files):
        name = os.path.basename(rel)
        if name.startswith("part-") and name[len("part-"):-len(".parquet")] not in known:
            moved.append(lake.move_aside(rel))
    log.warning("rebuilt the commit log's checkpoint; set aside %s", ", ".join(moved))
    return moved


def _set_aside_records(lake: ParquetLake, damaged: dict[str, str]) -> list[str]:
    """Move damaged records, and the files their commits published (named
    part-<commit id>.parquet), under LAKE/_damaged/."""
    moved = []
    present = sorted(rel for files in lake.listing().values() for rel in files)
    for rel in sorted(damaged):
        moved.append(lake.move_aside(rel))
        moved += [lake.move_aside(f) for f in present if os.path.basename(f) == part_name(rel)]
        log.warning("set aside damaged commit record %s (%s) and its files", rel, damaged[rel])
    return moved


def _retire(lake: ParquetLake, index: LogIndex, bad: list[str], result: RepairResult,
            ) -> set[str]:
    """Fill in the markers and units to retire for the lost files `bad`; returns
    the content keys of the videos concerned."""
    known = index.state.videos_done | set(index.state.failures)
    keys = analysis_keys(lake, index, set(bad))
    markers: set[str] = set()
    videos: set[str] = set()
    for rel in bad:
        table = rel.split("/", 1)[0]
        if table in row_tables():
            held = index.held_videos(rel)
            wrote = keys_of_file(rel, keys)
            markers |= {m for m in known if video_key_of(m) in held
                        and (wrote is None or m.split(":", 1)[1] in wrote)}
            videos |= held
        elif table in EVENT_TABLES:
            finished = {m for r in index.contributors(rel) for m in markers_of(r)}
            markers |= finished & known
            videos |= {video_key_of(m) for m in finished}
        else:
            result.dropped_files.append(rel)
    result.retired_markers = sorted(markers)
    result.retired_units = sorted(u for u, o in index.state.unit_outcomes.items()
                                  if o.video_key in videos)
    return videos


def analysis_keys(lake: ParquetLake, index: LogIndex, skip: set[str],
                  ) -> dict[str, dict[str, set[str]]]:
    """Table -> analysis_key -> model versions, as the readable `status_log`
    rows and `runs.outputs` name them (files in `skip` are not read)."""
    keys: dict[str, dict[str, set[str]]] = {}

    def add(table: str | None, key: str | None, version: str | None) -> None:
        if table and key:
            keys.setdefault(table, {}).setdefault(key, set()).add(version or "")

    for rel in _live(lake, index, "status_log", skip):
        rows = _rows(lake, rel, ["analysis", "analysis_key", "model_version"])
        for row in rows.group_by(rows.column_names).aggregate([]).to_pylist():
            add(row["analysis"], row["analysis_key"], row["model_version"])
    for rel in _live(lake, index, "runs", skip):
        for outputs in _rows(lake, rel, ["outputs"]).column("outputs").to_pylist():
            for out in outputs or []:
                add(out.get("table"), out.get("analysis_key"), out.get("model_version"))
    return keys


def keys_of_file(rel: str, keys: dict[str, dict[str, set[str]]]) -> set[str] | None:
    """Analysis keys whose rows a file of a row table may hold: its table's, of
    its partition's model version when the folder names one; None when unknown
    (then every marker of its videos is retired: more work, still exact)."""
    table = rel.split("/", 1)[0]
    by_key = keys.get(table)
    if not by_key:
        return None
    prefix = f"{partition_column(table) or ''}="
    folder = folder_of(rel).split("/")[-1]
    if partition_column(table) and folder.startswith(prefix):
        version = urllib.parse.unquote(folder[len(prefix):])
        chosen = {k for k, versions in by_key.items() if version in versions}
        if chosen:
            return chosen
    return set(by_key)


def _live(lake: ParquetLake, index: LogIndex, table: str, skip: set[str]) -> list[str]:
    return [rel for rel in lake.live_files(table, index.log) if rel not in skip]


def _rows(lake: ParquetLake, rel: str, columns: list[str]) -> pa.Table:
    """`columns` of a file (those it has), or no rows when it cannot be read."""
    try:
        have = [c for c in columns if c in lake.footer(rel).schema.to_arrow_schema().names]
        return lake.read(rel, have)
    except (pa.ArrowException, OSError) as exc:  # a corrupt page the footer check missed
        log.warning("cannot read %s (%s); repairing without it", rel, one_line(str(exc)))
        return pa.table({c: pa.array([], pa.string()) for c in columns})


def _rewrites(lake: ParquetLake, index: LogIndex, bad: set[str], videos: set[str],
              done: set[str], result: RepairResult) -> dict[str, pa.Table]:
    """Rows of `videos` under markers not in `done`, taken out of every other live
    row-table file that may hold them: table -> the rows those files keep."""
    kept: dict[str, list[pa.Table]] = {}
    for table in row_tables():
        for rel in _live(lake, index, table, bad):
            if rel in index.publisher and not index.held_videos(rel) & videos:
                continue  # the log says it holds none of these videos' rows
            rows = _without(lake, rel, videos, done)
            if rows is None:
                continue
            kept.setdefault(table, []).append(conform(rows[0], all_tables()[table]))
            result.rewritten.append(rel)
            result.rows_dropped += rows[1]
    return {table: pa.concat_tables(parts) for table, parts in kept.items()}


def _without(lake: ParquetLake, rel: str, videos: set[str], done: set[str],
             ) -> tuple[pa.Table, int] | None:
    """A file's rows less those of `videos` under markers not in `done`, and how
    many went; None when none go (or it has no version columns)."""
    keys = _rows(lake, rel, ["content_key", "analysis_key"])
    if keys.num_rows == 0 or keys.num_columns < 2:
        return None
    marks = pc.binary_join_element_wise(keys.column("content_key"),
                                        keys.column("analysis_key"), ":")
    drop = pc.and_(pc.is_in(keys.column("content_key"), pa.array(sorted(videos), pa.string())),
                   pc.invert(pc.is_in(marks, pa.array(sorted(done), pa.string()))))
    drop = pc.fill_null(drop, False)
    dropped = pc.sum(drop).as_py() or 0
    if not dropped:
        return None
    try:
        rows = lake.read(rel)
    except (pa.ArrowException, OSError) as exc:  # a page the footer check cannot see
        raise StorageError(f"cannot rewrite {rel}: {one_line(str(exc))}; run vidlake check "
                           f"{lake.root} --full --repair") from None
    return rows.filter(pc.invert(drop)), dropped


# -- ordering --------------------------------------------------------------------------
def repair_commit_id(found: CommitLog) -> str:
    """A commit id that sorts after every commit so far and before any later
    run's: the UTC second (no earlier than the newest stamped commit's), then
    `zrepair`, which sorts after a run id's hex suffix. `wait_past` then keeps
    later runs out of that second."""
    now = f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}"
    newest = (found.newest_id(_STAMPED) or now)[:16]
    return f"{max(now, newest)}-zrepair-{uuid.uuid4().hex[:8]}"


def wait_past(commit_id: str, most_s: float = 2.0) -> None:
    """Sleep until the UTC clock has left the second `commit_id` is stamped with
    (at most `most_s`: a stamp further ahead is another host's clock), so a run
    started afterwards gets a later id and its commits apply after this one."""
    stamp = datetime.strptime(commit_id[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    wait = stamp.timestamp() + 1.0 - time.time()
    if 0 < wait <= most_s:
        time.sleep(wait)
