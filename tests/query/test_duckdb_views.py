"""DuckDB views over a lake, and `vidlake query` in its three output formats."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs import query
from pipeline.lake.commit_record import CommitRecord
from pipeline.lake.parquet_lake import ParquetLake
from pipeline.lake.schemas import all_tables
from pipeline.query.duckdb_views import connect

TABLES = all_tables()

VIDEO_ROWS = [
    {"uri": f"/v/{name}", "size_bytes": size, "etag": "e", "status": status,
     "error": None if status == "ok" else "bad", "decoder": "decord", "codec": "h264",
     "width": 64, "height": 64, "fps": 25.0, "n_frames": 10, "duration_s": 0.4,
     "rotation": 0, "n_sampled": 2, "model": "m", "model_version": "v", "run_id": "r"}
    for name, size, status in [("a.mp4", 10, "ok"), ("b.mp4", 20, "ok"), ("c.mkv", 0, "error")]
]


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    """A lake with three `videos` rows in two commits, a staged-only commit, and an
    extra table written by another tool."""
    root = tmp_path / "lake"
    parquet = ParquetLake(str(root))
    table = pa.Table.from_pylist(VIDEO_ROWS, schema=TABLES["videos"])
    parquet.commit(CommitRecord("c1", "r"), {"videos": table.slice(0, 2)})
    parquet.commit(CommitRecord("c2", "r"), {"videos": table.slice(2)})
    staged = root / "_staging" / "c3"
    staged.mkdir(parents=True)
    pq.write_table(table, staged / "videos.parquet")  # never committed: invisible
    (root / "shots").mkdir()
    pq.write_table(pa.table({"uri": ["/v/a.mp4"], "shot_index": [0]}),
                   root / "shots" / "part-x.parquet")
    return root


def test_one_view_per_table_and_staging_is_invisible(lake: Path):
    con = connect(str(lake))
    views = {r[0] for r in con.execute("select view_name from duckdb_views() "
                                       "where not internal").fetchall()}
    assert views == {"videos", "shots", "latest_videos"}
    assert con.execute("select count(*), sum(size_bytes) from videos").fetchone() == (3, 30)
    assert con.execute("select shot_index from shots").fetchall() == [(0,)]


def test_a_lake_with_no_tables_has_no_views(tmp_path: Path):
    con = connect(str(tmp_path / "empty-lake"))
    with pytest.raises(duckdb.CatalogException):
        con.execute("select * from videos")


SQL = "select regexp_extract(uri, '[^/]+$') as name, size_bytes from videos order by name"


def test_query_table_format(lake: Path, capfd):
    assert query.main([str(lake), SQL]) == 0
    out = capfd.readouterr().out
    for name in ("a.mp4", "b.mp4", "c.mkv"):
        assert name in out


def test_query_csv_format(lake: Path, capfd):
    assert query.main([str(lake), SQL, "--format", "csv"]) == 0
    parsed = list(csv.DictReader(io.StringIO(capfd.readouterr().out)))
    assert parsed == [{"name": "a.mp4", "size_bytes": "10"},
                      {"name": "b.mp4", "size_bytes": "20"},
                      {"name": "c.mkv", "size_bytes": "0"}]


def test_query_json_format(lake: Path, capfd):
    assert query.main([str(lake), SQL, "--format", "json"]) == 0
    lines = capfd.readouterr().out.splitlines()
    assert [json.loads(line) for line in lines] == [
        {"name": "a.mp4", "size_bytes": 10}, {"name": "b.mp4", "size_bytes": 20},
        {"name": "c.mkv", "size_bytes": 0}]


def test_bad_sql_exits_2(lake: Path, capfd):
    assert query.main([str(lake), "select nope from videos"]) == 2
    assert "vidlake query: error" in capfd.readouterr().err
