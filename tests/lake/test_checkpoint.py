"""The checkpointed commit log: a checkpoint folds the log exactly, a reader of
the newest checkpoint plus the tail sees what a reader of every record saw,
and a crash before, during or after writing a checkpoint loses nothing.
Lake-level tests run on a local folder and on a SeaweedFS bucket."""

from __future__ import annotations

import random
import threading
from pathlib import Path

import pyarrow as pa
import pytest

from pipeline.errors import LakeDamaged
from pipeline.lake import checkpoint
from pipeline.lake.commit_log import RETIRED_DIR, CommitLog, checkpoint_name
from pipeline.lake.commit_record import CommitRecord, UnitOutcome
from pipeline.lake.lake_check import DAMAGED_CHECKPOINT, check_lake
from pipeline.lake.lake_repair import repair_lake
from pipeline.lake.lake_state import LakeState
from pipeline.lake.parquet_lake import COMMITS_DIR, ParquetLake, parquet_bytes
from pipeline.storage import filesystem, fs_path, join
from tests.lakes import rows

LABELS = pa.schema([("uri", pa.string()), ("frame_index", pa.int64()),
                    ("content_key", pa.string()), ("analysis_key", pa.string())])


class SimulatedCrash(Exception):
    """Raised by a lake that 'dies' at a chosen step of checkpointing."""


def _outcome(video: str, status: str = "ok", frames: int = 2) -> UnitOutcome:
    return UnitOutcome(video_key=video, status=status, error=None if status == "ok" else "bad",
                       decoder="decord", decoder_n_frames=10, frames=frames,
                       summaries={"shots": {"cuts": [3]}} if frames == 3 else {})


def random_records(seed: int, n: int = 40) -> list[CommitRecord]:
    """Commits of units, finished and failed videos, files, compactions and repairs'
    retirements, over a small set of keys so that later commits overwrite earlier ones."""
    rng = random.Random(seed)
    records: list[CommitRecord] = []
    for i in range(n):
        cid = f"2025010{1 + i // 10}T000000Z-{seed:04d}{i:04d}-00000"
        videos = rng.sample([f"v{k}" for k in range(12)], 3)
        record = CommitRecord(cid, f"run{i // 5}")
        for v in videos:
            record.units[f"{v}:u{rng.randrange(2)}"] = _outcome(
                v, rng.choice(["ok", "error"]), rng.choice([2, 3]))
            mark = f"{v}:a{rng.randrange(2)}"
            if rng.random() < 0.5:
                record.videos_done.append(mark)
            else:
                record.videos_failed[mark] = f"reason {i}"
            record.uris[v] = f"s3://b/{v}-{rng.randrange(3)}.mp4"
        record.files = {"frame_labels": f"frame_labels/part-{cid}.parquet"}
        if i and rng.random() < 0.2:
            record.removed = [f"frame_labels/part-{records[rng.randrange(i)].commit_id}.parquet"]
        if rng.random() < 0.15:
            record.retired_markers = [f"v{rng.randrange(12)}:a{rng.randrange(2)}"]
            record.retired_units = [f"v{rng.randrange(12)}:u{rng.randrange(2)}"]
        records.append(record)
    return records


# -- folding ---------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(8))
def test_a_checkpoint_holds_what_every_record_says(seed: int):
    records = random_records(seed)
    whole = LakeState.of(records)
    split = random.Random(seed).randrange(1, len(records))
    once = checkpoint.fold(checkpoint.EMPTY, records)
    first = checkpoint.Checkpoint.of_table(checkpoint.fold(checkpoint.EMPTY, records[:split]))
    twice = checkpoint.fold(first, records[split:])
    for table in (once, twice):
        for base in (checkpoint.Checkpoint.of_table(table),
                     checkpoint.Checkpoint.of_parquet(checkpoint.to_parquet(table))):
            assert checkpoint.state_of(base) == whole
            assert sorted(checkpoint.commit_ids(base)) == sorted(r.commit_id for r in records)
    staged = CommitLog(base=first, tail=records[split:], seq=1)
    assert staged.state() == whole
    for keys in ({"v1"}, {"v2", "v7", "v11"}, {f"v{k}" for k in range(12)}, set()):
        assert staged.state().ok_units_of(keys) == whole.ok_units_of(keys)
    unfolded = CommitLog(tail=records)
    assert staged.publishers == unfolded.publishers
    assert staged.removed == unfolded.removed
    present = set(unfolded.publishers)
    assert staged.merged_away(present) == unfolded.merged_away(present)


def test_a_folded_commit_still_says_which_units_and_videos_it_holds():
    first = CommitRecord("c1", "r1", units={"u1": _outcome("k1"), "u2": _outcome("k2")},
                         videos_done=["k1:a"], videos_failed={"k2:a": "bad"},
                         files={"frame_labels": "frame_labels/part-c1.parquet"})
    merge = CommitRecord("c2", "c2", removed=["frame_labels/part-c1.parquet"],
                         files={"frame_labels": "frame_labels/part-c2.parquet"})
    folded = checkpoint.records_of(checkpoint.Checkpoint.of_table(
        checkpoint.fold(checkpoint.EMPTY, [first, merge])))
    assert folded["c1"].units == first.units
    assert (folded["c1"].videos_done, folded["c1"].videos_failed) == (["k1:a"], {"k2:a": "bad"})
    assert folded["c1"].files == first.files and folded["c1"].run_id == "r1"
    assert folded["c2"].removed == merge.removed and folded["c2"].files == merge.files


@pytest.mark.parametrize("bad", [
    pa.table({"kind": ["unit"]}),  # columns missing
    checkpoint.empty().append_column("x", pa.array([], pa.int8())).drop_columns(["key"]),
])
def test_a_table_that_is_not_a_checkpoint_is_named_damaged(bad: pa.Table):
    with pytest.raises(checkpoint.CheckpointDamaged, match="missing"):
        checkpoint.Checkpoint.of_table(bad)
    with pytest.raises(checkpoint.CheckpointDamaged, match="not a checkpoint's"):
        checkpoint.Checkpoint.of_parquet(parquet_bytes(bad))


def test_unknown_kinds_keyless_rows_and_mixed_row_groups_are_damage():
    good = checkpoint.fold(checkpoint.EMPTY, random_records(1, 3))
    odd = good.set_column(0, "kind", pa.array(["evil"] * good.num_rows, pa.string()))
    with pytest.raises(checkpoint.CheckpointDamaged, match="unknown kinds"):
        checkpoint.Checkpoint.of_table(odd)
    with pytest.raises(checkpoint.CheckpointDamaged, match="one known kind"):
        checkpoint.Checkpoint.of_parquet(parquet_bytes(odd))
    with pytest.raises(checkpoint.CheckpointDamaged, match="one known kind"):
        checkpoint.Checkpoint.of_parquet(parquet_bytes(good))  # kinds mixed in a row group
    keyless = good.set_column(1, "key", pa.nulls(good.num_rows, pa.string()))
    with pytest.raises(checkpoint.CheckpointDamaged, match="no key"):
        checkpoint.Checkpoint.of_table(keyless)
    lazy = checkpoint.Checkpoint.of_parquet(checkpoint.to_parquet(keyless))  # footer fine
    with pytest.raises(checkpoint.CheckpointDamaged, match="no key"):
        lazy.kind(checkpoint.UNIT)


# -- a lake ----------------------------------------------------------------------------------
@pytest.fixture(params=["local", pytest.param("s3", marks=[pytest.mark.slow, pytest.mark.s3])])
def lake_root(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "local":
        return str(tmp_path / "lake")
    return f"s3://{request.getfixturevalue('s3_bucket')}/lake"


def _commit(lake: ParquetLake, n: int) -> None:
    """Commit number `n`: one video done, with one frame_labels row."""
    video = f"video{n:03d}"
    cid = f"20250101T{n // 3600:02d}{n // 60 % 60:02d}{n % 60:02d}Z-aaaaaaaa-{n:05d}"
    record = CommitRecord(cid, "r", units={f"{video}:u": _outcome(video)},
                          videos_done=[f"{video}:a"], uris={video: f"s3://b/{video}.mp4"})
    labels = pa.Table.from_pylist([{"uri": f"s3://b/{video}.mp4", "frame_index": 0,
                                    "content_key": video, "analysis_key": "a"}], schema=LABELS)
    lake.commit(record, {"frame_labels": labels})


def _names(lake: ParquetLake, *folder: str) -> list[str]:
    fs = filesystem(lake.root)
    try:
        return sorted(p.rsplit("/", 1)[-1] for p in fs.ls(join(fs_path(lake.root), COMMITS_DIR,
                                                              *folder), detail=False,
                                                       refresh=True))
    except FileNotFoundError:
        return []


def _count(lake: ParquetLake) -> int:
    return rows(lake.root, "SELECT count(*) AS n FROM frame_labels")[0]["n"]


def test_a_checkpoint_retires_the_records_it_folds(lake_root: str):
    lake = ParquetLake(lake_root)
    for n in range(5):
        _commit(lake, n)
    before = lake.state()
    assert lake.checkpoint_if_due(6) == 0  # 5 records: not due
    assert lake.checkpoint_if_due(0) == 0  # 0: never
    assert lake.checkpoint_if_due(5) == 1
    found = lake.log()
    assert (found.seq, len(found.tail), len(found)) == (1, 0, 5)
    assert found.state() == before
    assert _names(lake) == [RETIRED_DIR, checkpoint_name(1)]
    assert len(_names(lake, RETIRED_DIR)) == 5  # kept for a repair
    for n in range(5, 8):
        _commit(lake, n)
    assert lake.checkpoint() == 2
    for n in range(8, 10):
        _commit(lake, n)
    assert lake.checkpoint() == 3
    # the one before the newest stays for readers that listed it; older ones go
    assert [n for n in _names(lake) if n.startswith("checkpoint")] == [checkpoint_name(2),
                                                                       checkpoint_name(3)]
    _commit(lake, 10)
    found = lake.log()
    assert (found.seq, [r.commit_id[-5:] for r in found.tail]) == (3, ["00010"])
    assert len(found.state().videos_done) == 11
    assert _count(lake) == 11
    assert lake.recover() == 0


def test_compaction_checkpoints_and_hides_its_inputs(lake_root: str):
    from pipeline.lake.compaction import compact_lake

    lake = ParquetLake(lake_root)
    for n in range(4):
        _commit(lake, n)
    result = compact_lake(lake, min_files=2)
    assert result.files_written == 1
    found = lake.log()
    assert found.seq == 1 and found.tail == []
    assert len(found.removed) == 4
    assert len(lake.live_files("frame_labels")) == 1
    assert _count(lake) == 4


class CrashBeforeCheckpoint(ParquetLake):
    def _write_atomic(self, path: str, data: bytes) -> None:
        if path.endswith(".parquet") and f"/{COMMITS_DIR}/" in path:
            raise SimulatedCrash(path)
        super()._write_atomic(path, data)


class TornCheckpoint(ParquetLake):
    """A store that leaves half a checkpoint where the whole one should be."""

    def _write_atomic(self, path: str, data: bytes) -> None:
        if path.endswith(".parquet") and f"/{COMMITS_DIR}/" in path:
            filesystem(self.root).pipe_file(path, data[: len(data) // 2])
            raise SimulatedCrash(path)
        super()._write_atomic(path, data)


class CrashWhileRetiring(ParquetLake):
    """Dies after retiring `survive` records."""

    survive = 0

    def _move(self, src: str, dst: str) -> None:
        if f"/{RETIRED_DIR}/" in dst:
            if self.survive == 0:
                raise SimulatedCrash(dst)
            self.survive -= 1
        super()._move(src, dst)


def _lake_with_a_checkpoint(root: str, tail: int = 3) -> ParquetLake:
    lake = ParquetLake(root)
    for n in range(4):
        _commit(lake, n)
    lake.checkpoint()
    for n in range(4, 4 + tail):
        _commit(lake, n)
    return lake


def test_a_crash_before_the_checkpoint_leaves_the_log_as_it_was(lake_root: str):
    lake = _lake_with_a_checkpoint(lake_root)
    before = lake.state()
    with pytest.raises(SimulatedCrash):
        CrashBeforeCheckpoint(lake_root).checkpoint()
    found = lake.log()
    assert (found.seq, len(found.tail)) == (1, 3)
    assert found.state() == before and _count(lake) == 7


@pytest.mark.parametrize("survive", [0, 2])
def test_a_crash_while_retiring_records_loses_nothing(lake_root: str, survive: int):
    lake = _lake_with_a_checkpoint(lake_root)
    before = lake.state()
    crashing = CrashWhileRetiring(lake_root)
    crashing.survive = survive
    with pytest.raises(SimulatedCrash):
        crashing.checkpoint()
    found = lake.log()  # the new checkpoint covers the records still there
    assert (found.seq, found.tail, len(found.covered)) == (2, [], 3 - survive)
    assert found.state() == before and _count(lake) == 7
    assert found.due(1000)  # the next writer retires them
    assert lake.checkpoint_if_due(1000) == 3
    assert lake.log().covered == [] and lake.state() == before


def test_a_torn_checkpoint_is_damage_the_repair_rebuilds(lake_root: str):
    lake = _lake_with_a_checkpoint(lake_root)
    for n in range(7, 9):  # a second checkpoint, so the torn one has an older one below
        _commit(lake, n)
    lake.checkpoint()
    before = lake.state()
    _commit(lake, 9)
    with pytest.raises(SimulatedCrash):
        TornCheckpoint(lake_root).checkpoint()
    torn = f"{COMMITS_DIR}/{checkpoint_name(3)}"
    found, damaged = lake.read_log()
    assert list(damaged) == [torn] and found.seq == 2
    with pytest.raises(LakeDamaged, match=rf"{checkpoint_name(3)}.*--repair"):
        lake.log()
    report = check_lake(lake)
    assert [(p.kind, p.path) for p in report.problems] == [(DAMAGED_CHECKPOINT, torn)]
    repair_lake(lake)
    assert check_lake(lake).healthy
    state = lake.state()
    assert state.videos_done == before.videos_done | {"video009:a"}
    assert _count(lake) == 10


def test_a_lost_checkpoint_is_rebuilt_from_the_retired_records(lake_root: str):
    """Both checkpoints damaged: the repair folds every retired record again."""
    lake = _lake_with_a_checkpoint(lake_root)
    lake.checkpoint()
    before = lake.state()
    fs = filesystem(lake_root)
    for seq in (1, 2):
        fs.pipe_file(join(fs_path(lake_root), COMMITS_DIR, checkpoint_name(seq)), b"PAR1junk")
    assert len(lake.read_log()[1]) == 2
    repair_lake(lake)
    assert lake.state() == before and check_lake(lake).healthy
    assert _count(lake) == 7


# -- readers while a writer checkpoints --------------------------------------------------------
class ReaderOvertaken(ParquetLake):
    """A reader that lists the log, then lets a writer checkpoint (retiring what
    it listed) before it reads the records."""

    writer: ParquetLake | None = None

    def _read_records(self, paths):
        if self.writer is not None and paths:
            writer, self.writer = self.writer, None
            writer.checkpoint()
        return super()._read_records(paths)


def test_a_reader_overtaken_by_a_checkpoint_reads_again(tmp_path: Path):
    root = str(tmp_path / "lake")
    lake = _lake_with_a_checkpoint(root)
    before = lake.state()
    reader = ReaderOvertaken(root)
    reader.writer = ParquetLake(root)
    found = reader.log()
    assert found.seq == 2 and found.tail == []
    assert found.state() == before


def test_readers_see_whole_states_while_a_writer_commits_and_checkpoints(tmp_path: Path):
    root = str(tmp_path / "lake")
    writer = ParquetLake(root)
    _commit(writer, 0)
    stop = threading.Event()
    seen: list[list[int]] = [[], []]
    errors: list[BaseException] = []

    def read(sizes: list[int]) -> None:
        reader = ParquetLake(root)
        try:
            while not stop.is_set():
                done = reader.state().videos_done
                # a whole state is a prefix of the commits: videos 0..k-1, none missing
                assert done == {f"video{n:03d}:a" for n in range(len(done))}, sorted(done)
                sizes.append(len(done))
        except BaseException as exc:  # the test reports it
            errors.append(exc)

    readers = [threading.Thread(target=read, args=(sizes,)) for sizes in seen]
    for thread in readers:
        thread.start()
    try:
        for n in range(1, 40):
            _commit(writer, n)
            if n % 4 == 0:
                writer.checkpoint()
    finally:
        stop.set()
        for thread in readers:
            thread.join()
    assert errors == []
    for sizes in seen:  # each reader saw some states, and only ever moved forward
        assert sizes and sizes == sorted(sizes)
    assert writer.log().seq == 9
    assert len(writer.state().videos_done) == 40


def test_a_checkpoint_page_that_cannot_be_read_is_found_by_check_and_rebuilt(tmp_path: Path):
    """The footer is fine, a page of the unit rows is not: a run that needs those
    rows stops with one line naming the file; check reads every page and says
    so; the repair rebuilds the checkpoint."""
    import pyarrow.parquet as pq

    lake = _lake_with_a_checkpoint(str(tmp_path / "lake"), tail=0)
    before = lake.state()
    path = tmp_path / "lake" / COMMITS_DIR / checkpoint_name(1)
    data = bytearray(path.read_bytes())
    meta = pq.ParquetFile(path).metadata
    units = next(i for i in range(meta.num_row_groups)
                 if meta.row_group(i).column(0).statistics.min == checkpoint.UNIT)
    start = meta.row_group(units).column(1).data_page_offset  # the unit ids' page
    data[start + 8:start + 40] = bytes(32)
    path.write_bytes(bytes(data))
    found = lake.log()  # the footer and the kinds a plan reads are fine
    with pytest.raises(LakeDamaged, match=rf"{checkpoint_name(1)}.*--repair"):
        _ = found.state().unit_outcomes
    report = check_lake(lake)
    assert [(p.kind, p.path) for p in report.problems] == [
        (DAMAGED_CHECKPOINT, f"{COMMITS_DIR}/{checkpoint_name(1)}")]
    repair_lake(lake)
    assert lake.state() == before and check_lake(lake).healthy
