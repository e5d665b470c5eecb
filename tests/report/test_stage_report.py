"""The report's stage metrics: the bottleneck verdict and cost figures of the
run's `runs` row, totals per stage and the stage timeline from `run_stages`.
The HTML is parsed back, every chart decoded, and each number beside a
chart compared with a DuckDB query of the table it came from (and with the
totals the label run itself wrote in runs.stages). A lake whose runs rows
predate stage metrics still gets a report, saying "not recorded"."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs import report
from pipeline.observe.stage_meter import STAGES
from pipeline.report import stage_data
from pipeline.report.html_report import NO_STAGES, NOT_RECORDED, stage_metrics
from pipeline.report.report_data import COST_COLUMNS, RunInfo
from tests.lakes import rows
from tests.report.html_page import Page, decode_image, read_page, table_rows

NEW_COLUMNS = ("stages", *COST_COLUMNS, "bottleneck")
KEY_SQL = "stage, coalesce(analysis, '') AS analysis"


def _run(lake: Path) -> dict:
    (run,) = rows(str(lake), "SELECT * FROM runs")
    return run


def _cost_rows(page: Page) -> dict[str, dict[str, str]]:
    return {r["data-field"]: r for r in table_rows(page, "run-summary")
            if r["data-field"] in COST_COLUMNS}


def _charts(page: Page, kind: str) -> list[dict[str, str]]:
    return [i for i in page.images if i["data-chart"] == kind]


# -- summary --------------------------------------------------------------------
def test_the_bottleneck_verdict_is_the_runs_row(lake):
    page = read_page(lake["html"])
    verdict = _run(lake["lake"])["bottleneck"]
    assert verdict and "-bound" in verdict  # the label run measured something
    assert page.by_id["bottleneck"] == verdict
    assert page.by_id["bottleneck"] != page.by_id["verdict"]  # its own line


def test_cost_figures_are_the_runs_row(lake):
    run = _run(lake["lake"])
    shown = _cost_rows(read_page(lake["html"]))
    assert set(shown) == set(COST_COLUMNS)
    for column in COST_COLUMNS:
        value = shown[column]["data-value"]
        assert (float(value) if value else None) == run[column], column
    assert run["video_hours"] > 0 and run["cpu_hours"] > 0
    assert f"|{run['video_hours']:.4g}|" in shown["video_hours"]["text"]
    # the test machine's run held no GPU: no video-hours per GPU-hour, and it says why
    assert run["gpu_hours"] == 0 and run["video_hours_per_gpu_hour"] is None
    assert "none: the run held no GPU-hours" in shown["video_hours_per_gpu_hour"]["text"]


def _old_style(lake: Path) -> None:
    """Rewrite the lake's runs files without the stage-metrics columns, as a
    label run before them wrote them."""
    for path in (lake / "runs").glob("*.parquet"):
        old = pq.read_table(path)
        pq.write_table(old.drop_columns([c for c in NEW_COLUMNS if c in old.column_names]),
                       path)


def test_a_lake_from_before_stage_metrics_says_not_recorded(lake, tmp_path: Path):
    copy = tmp_path / "lake"
    shutil.copytree(lake["lake"], copy)
    _old_style(copy)
    shutil.rmtree(copy / "run_stages")
    assert not set(NEW_COLUMNS) & {r["column_name"] for r in rows(
        str(copy), "SELECT column_name FROM (DESCRIBE runs)")}
    out = tmp_path / "old.html"
    assert report.main([str(copy), "--output", str(out), "--videos", "0"]) == 0
    page = read_page(out)
    assert NOT_RECORDED in page.by_id["bottleneck"]
    assert {c: (r["data-value"], r["text"]) for c, r in _cost_rows(page).items()} == {
        c: ("", f"{label}|{NOT_RECORDED}|") for c, label in (
            ("video_hours", "video-hours"), ("cpu_hours", "CPU-hours"),
            ("gpu_hours", "GPU-hours"), ("video_hours_per_cpu_hour", "video-hours per CPU-hour"),
            ("video_hours_per_gpu_hour", "video-hours per GPU-hour"))}
    assert NO_STAGES in " ".join(page.text)
    assert table_rows(page, "failures")  # the rest of the report is there


def test_an_older_run_beside_a_newer_one_says_not_recorded(lake, tmp_path: Path):
    copy = tmp_path / "lake"
    shutil.copytree(lake["lake"], copy)
    (new,) = (copy / "runs").glob("*.parquet")
    old = pq.read_table(new).drop_columns(list(NEW_COLUMNS))
    old = old.set_column(0, "run_id", pa.array(["20200101T000000Z-00000000"]))
    pq.write_table(old, copy / "runs" / "part-old.parquet")
    out = tmp_path / "old.html"
    assert report.main([str(copy), "--output", str(out), "--videos", "0",
                        "--run", "20200101T000000Z-00000000"]) == 0
    page = read_page(out)
    assert NOT_RECORDED in page.by_id["bottleneck"]
    assert all(r["data-value"] == "" for r in _cost_rows(page).values())
    assert NO_STAGES in " ".join(page.text)  # run_stages has no row of that run
    out = tmp_path / "new.html"
    assert report.main([str(copy), "--output", str(out), "--videos", "0"]) == 0
    assert read_page(out).by_id["bottleneck"] == _run(lake["lake"])["bottleneck"]


# -- totals per stage -----------------------------------------------------------
_SUMS_SQL = f"""SELECT {KEY_SQL}, max(workers) AS workers, sum(items_in) AS items_in,
    sum(items_out) AS items_out, sum(frames_out) AS frames_out, sum(busy_s) AS busy_s,
    sum(idle_s) AS idle_s, sum(blocked_s) AS blocked_s, sum(bytes) AS bytes
FROM run_stages GROUP BY ALL"""
_NUMBERS = ("workers", "items_in", "items_out", "frames_out", "busy_s", "idle_s", "blocked_s",
            "bytes")


def _shown(row: dict[str, str], name: str) -> float | None:
    value = row[f"data-{name.replace('_', '-')}"]
    return float(value) if value else None


def test_stage_totals_are_sums_of_run_stages(lake):
    expected = {(r["stage"], r["analysis"]): r for r in rows(str(lake["lake"]), _SUMS_SQL)}
    shown = table_rows(read_page(lake["html"]), "stage-totals")
    keys = [(r["data-stage"], r["data-analysis"]) for r in shown]
    assert set(keys) == set(expected) and len(keys) == len(expected)
    assert keys == sorted(keys, key=lambda k: (STAGES.index(k[0]), k[1]))  # pipeline order
    assert {k for k in keys if k[0] == "analysis"} == {
        ("analysis", a) for a in ("shots", "frame_labels", "detections")}
    for key, row in zip(keys, shown, strict=True):
        for name in _NUMBERS:
            assert _shown(row, name) == pytest.approx(expected[key][name]), (key, name)
    decode = shown[keys.index(("decode", ""))]
    assert _shown(decode, "frames_out") == _run(lake["lake"])["counts"]["frames"] > 0


def test_stage_totals_agree_with_the_runs_own_totals(lake):
    """runs.stages was summed in Python by the label run; the report sums with SQL."""
    run = _run(lake["lake"])
    own = {(s["stage"], s["analysis"] or ""): s for s in run["stages"]}
    shown = table_rows(read_page(lake["html"]), "stage-totals")
    assert [(r["data-stage"], r["data-analysis"]) for r in shown] == list(own)
    for row in shown:
        total = own[(row["data-stage"], row["data-analysis"])]
        for name in ("busy_s", "frames_out", "items_out", "utilisation"):
            assert _shown(row, name) == pytest.approx(total[name]), (row["data-stage"], name)
    assert any(_shown(r, "utilisation") for r in shown)


# -- timeline -------------------------------------------------------------------
def test_timeline_charts_decode_and_match_their_numbers(lake):
    page = read_page(lake["html"])
    keys = rows(str(lake["lake"]), f"SELECT {KEY_SQL}, count(*) AS n, "
                                   "sum(frames_out) AS frames FROM run_stages GROUP BY ALL")
    (busy,) = _charts(page, "stage-utilisation")
    (frames,) = _charts(page, "stage-frames")
    assert int(busy["data-series"]) == len(keys) == 8
    assert int(frames["data-series"]) == sum(1 for k in keys if k["frames"] > 0)
    for chart in (busy, frames):
        image = decode_image(chart)
        assert image.format == "PNG" and image.size == (800, 320)
        pixels = np.asarray(image.convert("RGB")).reshape(-1, 3)
        colours = len(np.unique(pixels, axis=0))
        assert colours > 20  # lines, text and legend, not a blank canvas
    points = table_rows(page, "stage-timeline")
    for key in keys:  # a short run: one point per interval, nothing summed
        mine = [p for p in points if (p["data-stage"], p["data-analysis"])
                == (key["stage"], key["analysis"])]
        assert len(mine) == key["n"]
        assert sum(_shown(p, "frames_out") or 0 for p in mine) == key["frames"]


def test_timeline_points_are_the_intervals_of_run_stages(lake):
    page = read_page(lake["html"])
    start = _run(lake["lake"])["started_at"].timestamp()
    expected = rows(str(lake["lake"]), f"SELECT {KEY_SQL}, epoch(interval_start) AS t, "
                                       "interval_s, utilisation, frames_per_s FROM run_stages "
                                       "ORDER BY t")
    points = table_rows(page, "stage-timeline")
    assert len(points) == len(expected)
    for key in {(r["stage"], r["analysis"]) for r in expected}:
        mine = [p for p in points if (p["data-stage"], p["data-analysis"]) == key]
        theirs = [r for r in expected if (r["stage"], r["analysis"]) == key]
        for p, row in zip(mine, theirs, strict=True):  # both in time order
            assert float(p["data-start-s"]) == pytest.approx(row["t"] - start, abs=1e-5)
            assert float(p["data-end-s"]) - float(p["data-start-s"]) == pytest.approx(
                row["interval_s"])
            assert _shown(p, "utilisation") == pytest.approx(row["utilisation"])
            assert _shown(p, "frames_per_s") == pytest.approx(row["frames_per_s"])


def _long_run(con: duckdb.DuckDBPyConnection, intervals: int,
              analysis: str = "frame_labels") -> datetime:
    """A run_stages view of a run of `intervals` 5 s intervals: decode (4 workers)
    and one analysis (2 workers) with random work; returns when it started."""
    started = datetime(2026, 1, 1, tzinfo=timezone.utc)
    rng = np.random.default_rng(7)
    n = 2 * intervals
    table = pa.table({
        "run_id": ["r1"] * n, "stage": ["decode", "analysis"] * intervals,
        "analysis": [None, analysis] * intervals,
        "interval_start": [started + timedelta(seconds=5 * (k // 2)) for k in range(n)],
        "interval_s": [5.0] * n, "workers": [4, 2] * intervals,
        "items_in": rng.integers(0, 9, n), "items_out": rng.integers(0, 9, n),
        "frames_out": rng.integers(0, 500, n), "busy_s": rng.uniform(0, 10, n),
        "idle_s": rng.uniform(0, 5, n), "blocked_s": pa.nulls(n, pa.float64()),
        "bytes": [0] * n})
    con.register("stage_rows", table)
    con.execute("CREATE VIEW run_stages AS SELECT * FROM stage_rows")
    return started


def test_a_long_run_is_summed_into_at_most_max_points_buckets():
    con = duckdb.connect()
    started = _long_run(con, intervals=1000)  # 5000 s: 1000 intervals per stage
    wall_s = 5000.0
    totals = stage_data.stage_totals(con, "r1", wall_s)
    assert totals is not None and [(t.stage, t.analysis) for t in totals] == [
        ("decode", None), ("analysis", "frame_labels")]
    points = stage_data.timeline(con, "r1", started, [(t.stage, t.analysis) for t in totals])
    expected = {r[0]: r[1:] for r in con.execute(
        "SELECT stage, sum(frames_out), sum(busy_s), sum(interval_s), max(workers) "
        "FROM run_stages GROUP BY stage").fetchall()}
    for total in totals:
        mine = [p for p in points if p.stage == total.stage]
        frames, busy, seconds, workers = expected[total.stage]
        assert stage_data.MAX_POINTS // 2 <= len(mine) <= stage_data.MAX_POINTS
        assert sum(p.frames_out or 0 for p in mine) == frames == total.frames_out
        assert sum(p.busy_s or 0 for p in mine) == pytest.approx(busy)
        assert sum(p.seconds for p in mine) == pytest.approx(seconds)
        assert mine[0].start_s == 0 and mine[-1].end_s == pytest.approx(wall_s)
        for p in mine:
            assert p.frames_per_s == pytest.approx((p.frames_out or 0) / p.seconds)
            assert p.utilisation == pytest.approx(min((p.busy_s or 0) / (workers * p.seconds),
                                                      1.0))
        assert total.utilisation == pytest.approx(min(busy / (workers * wall_s), 1.0))


def test_the_stage_section_of_a_long_run_stays_small():
    con = duckdb.connect()
    started = _long_run(con, intervals=5000)
    run = RunInfo("r1", "completed", started, None, {}, 25_000.0, None, "")
    html = stage_metrics(con, run)
    page = Page()
    page.feed(html)
    assert len(table_rows(page, "stage-timeline")) <= 2 * stage_data.MAX_POINTS
    assert len(table_rows(page, "stage-totals")) == 2
    for kind in ("stage-utilisation", "stage-frames"):
        (chart,) = _charts(page, kind)
        assert int(chart["data-series"]) == 2 and decode_image(chart).size == (800, 320)
    assert len(html) < 1_000_000


def test_an_analysis_named_like_a_stage_gets_its_own_line():
    con = duckdb.connect()
    started = _long_run(con, intervals=10, analysis="decode")
    run = RunInfo("r1", "completed", started, None, {}, 50.0, None, "")
    page = Page()
    page.feed(stage_metrics(con, run))
    for kind in ("stage-utilisation", "stage-frames"):
        (chart,) = _charts(page, kind)
        assert int(chart["data-series"]) == 2
    assert [(r["data-stage"], r["data-analysis"]) for r in table_rows(page, "stage-totals")] \
        == [("decode", ""), ("analysis", "decode")]
