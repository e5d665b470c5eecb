"""README's "Write your own analysis": the example module, registered with one
line, runs end to end: a new table in the lake, its rows read back with DuckDB,
its option checked, its latest view, and `vidlake check` knowing the table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from jobs import label
from pipeline.analyses import kinds
from pipeline.lake.lake_check import check_lake
from pipeline.lake.parquet_lake import ParquetLake
from pipeline.synthetic.video_writer import write_video
from tests.examples import frame_brightness
from tests.examples.frame_brightness import FRAME_BRIGHTNESS_KIND
from tests.lakes import by_name, rows
from tests.procs import REPO_ROOT


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    """The one registry line, made for this test only."""
    monkeypatch.setitem(kinds.KINDS, "frame_brightness", FRAME_BRIGHTNESS_KIND)


def _source(tmp_path: Path) -> Path:
    source = tmp_path / "videos"
    source.mkdir()
    write_video(source / "black.mp4", iter(np.zeros((50, 64, 64, 3), np.uint8)), fps=25)
    write_video(source / "white.mp4", iter(np.full((50, 64, 64, 3), 255, np.uint8)), fps=25)
    return source


@pytest.mark.usefixtures("registered")
def test_the_example_analysis_writes_its_own_table(tmp_path: Path):
    lake = tmp_path / "lake"
    assert label.main([str(_source(tmp_path)), "--output", str(lake), "--engine", "sequential",
                       "--analysis", "frame_brightness:dark_below=0.5,sample=every:10"]) == 0
    got = rows(str(lake), "select uri, frame_index, luma, contrast, dark from "
                          "latest_frame_brightness order by uri, frame_index")
    assert [r["frame_index"] for r in got] == [0, 10, 20, 30, 40] * 2
    videos = {name: [r for r in got if r["uri"].endswith(name)]
              for name in ("black.mp4", "white.mp4")}
    assert all(r["dark"] and r["luma"] < 0.05 for r in videos["black.mp4"])
    assert all(not r["dark"] and r["luma"] > 0.95 for r in videos["white.mp4"])
    assert all(r["contrast"] < 0.02 for r in got)
    status = by_name(rows(str(lake), "select uri, status from video_status"))
    assert {v["status"] for v in status.values()} == {"done"}
    assert check_lake(ParquetLake(str(lake))).healthy


@pytest.mark.usefixtures("registered")
def test_its_options_are_checked_like_every_other(tmp_path: Path, capsys):
    code = label.main([str(_source(tmp_path)), "--output", str(tmp_path / "lake"),
                       "--engine", "sequential", "--analysis", "frame_brightness:dark_below=2"])
    assert code == 2
    assert "bad dark_below='2'" in capsys.readouterr().err


def test_readme_shows_the_example_as_it_runs():
    """The README links the module and quotes its declaration word for word."""
    readme = (REPO_ROOT / "README.md").read_text()
    source = Path(frame_brightness.__file__).read_text()
    start = readme.index("**Write your own analysis.**")
    section = readme[start:readme.index("**Relabel every night.**", start)]
    quoted = section.split("```python\n", 1)[1].split("```", 1)[0]
    assert quoted.startswith("FRAME_BRIGHTNESS_KIND = AnalysisKind(") and quoted in source
    assert "(tests/examples/frame_brightness.py)" in section
    assert "`FRAME_BRIGHTNESS_KIND` to `KINDS`" in section  # the registry line
