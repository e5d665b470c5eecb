"""Read a lake back the way its users do: DuckDB views from `pipeline.query`."""

from __future__ import annotations

from typing import Any

from pipeline.lake.schemas import all_tables
from pipeline.query.duckdb_views import connect
from pipeline.storage_options import StorageOptions

TABLES = all_tables()


def rows(lake: str, sql: str, storage: StorageOptions | None = None) -> list[dict[str, Any]]:
    """Rows of `sql` over the lake's views, as dicts."""
    relation = connect(lake, storage).sql(sql)
    return relation.to_arrow_table().to_pylist()


def table_counts(lake: str, storage: StorageOptions | None = None) -> dict[str, int]:
    """Rows per table (0 for a table with no file yet), for every contract table."""
    con = connect(lake, storage)
    present = {r[0] for r in con.execute("select view_name from duckdb_views() "
                                         "where not internal").fetchall()}
    return {name: (con.execute(f"select count(*) from {name}").fetchone()[0]
                   if name in present else 0) for name in sorted(TABLES)}


def by_name(records: list[dict[str, Any]], key: str = "uri") -> dict[str, dict[str, Any]]:
    """Index rows by the file name at the end of their `key` column."""
    return {str(r[key]).rsplit("/", 1)[-1]: r for r in records}


def expected_frames(names: list[str] | tuple[str, ...], sample: str) -> set[tuple[str, int]]:
    """(file name, frame_index) of every frame `sample` picks from the good media `names`."""
    from pipeline.config import SampleSpec
    from pipeline.plan.sampling import sample_indices
    from tests.media import GOOD

    spec = SampleSpec.parse(sample)
    return {(name, int(i)) for name in names if name in GOOD
            for i in sample_indices(spec, GOOD[name].n_frames, GOOD[name].fps)}


def assert_corpus_accounted(lake: str, names: list[str] | tuple[str, ...], sample: str,
                            storage: StorageOptions | None = None) -> None:
    """Every input exactly once in `videos` (good ones ok, bad ones error with a
    reason) and `frame_labels` holding exactly the sampled frames of the good ones."""
    from tests.media import BAD, GOOD

    videos = rows(lake, "select * from videos", storage)
    assert sorted(str(v["uri"]).rsplit("/", 1)[-1] for v in videos) == sorted(names)
    labels = rows(lake, "select uri, frame_index, timestamp_s from frame_labels", storage)
    got = [(str(r["uri"]).rsplit("/", 1)[-1], r["frame_index"]) for r in labels]
    assert len(got) == len(set(got)), "duplicate frame_labels rows"
    good = [n for n in names if n in GOOD]
    assert {g for g in got if g[0] in GOOD} == expected_frames(good, sample)
    for row, (name, index) in zip(labels, got, strict=True):
        if name in GOOD:
            assert abs(row["timestamp_s"] - index / GOOD[name].fps) < 1e-3, (name, index)
    per_video = {name: sum(1 for g in got if g[0] == name) for name in names}
    for name, video in by_name(videos).items():
        assert video["n_sampled"] == per_video[name], name
        if name in BAD:
            assert video["status"] == "error" and video["error"], name
        else:
            spec = GOOD[name]
            assert video["status"] == "ok" and video["error"] is None, (name, video["error"])
            assert (video["codec"], video["width"], video["height"], video["n_frames"]) == (
                spec.stream_codec, spec.width, spec.height, spec.n_frames), name
            assert video["decoder"] == ("pyav" if spec.codec == "av1" else "decord"), name
