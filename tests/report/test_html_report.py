"""`vidlake report` end to end on a real lake (tests/report/report_lake.py:
`vidlake label` of shots, frame_labels and detections over small real videos,
a bad file named with `<script>`, a video deleted after labelling, `vidlake
evaluate`, a training_metrics table): the HTML parsed back, every embedded
image decoded, and the numbers beside each figure compared with DuckDB
queries of the tables they came from. Stage metrics: test_stage_report.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs import report
from pipeline.report.contact_sheet import HEADER, row_height
from pipeline.report.frame_pictures import STRIP_WIDTH, frame_size
from pipeline.report.html_report import NO_STAGES
from pipeline.report.thumbnails import thumb_size
from tests.lakes import rows
from tests.report.html_page import decode_image, read_page, table_rows
from tests.report.report_lake import HEIGHT, WIDTH


def test_every_image_is_inline_and_decodes(lake):
    page = read_page(lake["html"])
    kinds = [i["data-chart"] for i in page.images]
    assert sorted(set(kinds)) == ["confusion", "detection-frame", "labels", "shot-strip",
                                  "stage-frames", "stage-utilisation", "throughput",
                                  "training"]
    for attributes in page.images:
        assert decode_image(attributes).size[0] > 10
    text = lake["html"].read_text()
    assert "http://" not in text and "https://" not in text and "<script" not in text
    assert "<link" not in text


def test_failures_match_a_group_by_on_videos(lake):
    expected = {r["error"]: r["n"] for r in rows(str(lake["lake"]),
                "SELECT error, count(*) AS n FROM videos WHERE status <> 'ok' GROUP BY ALL")}
    got = {r["data-reason"]: int(r["data-count"]) for r in table_rows(read_page(lake["html"]),
                                                                        "failures")}
    assert got == expected and sum(got.values()) == 1


def test_label_bars_match_counts_per_model_version(lake):
    page = read_page(lake["html"])
    expected = {(r["model_version"], r["label"]): r["n"] for r in rows(
        str(lake["lake"]), "SELECT model_version, label, count(*) AS n FROM frame_labels "
                           "GROUP BY ALL")}
    got = {(r["div-data-model-version"], r["data-label"]): int(r["data-count"])
           for r in page.rows if r.get("div-data-table") == "frame_labels"}
    assert got == expected
    charts = [i for i in page.images if i["data-chart"] == "labels"]
    assert [c["data-model-version"] for c in charts] == sorted({v for v, _ in expected})


def test_throughput_accounts_for_every_video_and_frame(lake):
    buckets = table_rows(read_page(lake["html"]), "throughput")
    (totals,) = rows(str(lake["lake"]), "SELECT count(*) AS videos, sum(n_sampled) AS frames "
                                         "FROM videos")
    assert sum(int(b["data-videos"]) for b in buckets) == totals["videos"] == 4
    assert sum(int(b["data-frames"]) for b in buckets) == totals["frames"]


def test_shot_strips_show_each_shot_and_name_the_video_that_is_gone(lake):
    page = read_page(lake["html"])
    strips = {i["alt"].removeprefix("shot-strip of ").rsplit("/", 1)[-1]: decode_image(i)
              for i in page.images if i["data-chart"] == "shot-strip"}
    assert set(strips) == {"v0.mp4", "v1.mp4"}  # gone.mp4 cannot be decoded any more
    shots = {r["uri"].rsplit("/", 1)[-1]: r["n"] for r in rows(
        str(lake["lake"]), "SELECT uri, count(*) AS n FROM shots GROUP BY uri")}
    thumb = thumb_size(WIDTH, HEIGHT, STRIP_WIDTH)
    for name, image in strips.items():
        assert image.height == HEADER + shots[name] * row_height(thumb.height), name
    text = " ".join(page.text)
    assert "decode problem" in text and "gone.mp4" in text


def test_detection_boxes_are_drawn_where_the_table_puts_them(lake):
    page = read_page(lake["html"])
    frames = {i["alt"].rsplit("/", 1)[-1]: decode_image(i).convert("RGB")
              for i in page.images if i["data-chart"] == "detection-frame"}
    assert set(frames) == {"v0.mp4", "v1.mp4"}
    size = frame_size(WIDTH, HEIGHT)
    scale = size.width / WIDTH
    (box,) = rows(str(lake["lake"]), "SELECT x1, y1, x2, y2 FROM detections WHERE uri LIKE "
                                     "'%/v0.mp4' AND frame_index = 0")
    pixels = np.asarray(frames["v0.mp4"])
    # the first frame sits at (4, 4); its box's left edge is red
    x, y = 4 + round(box["x1"] * scale), 4 + round((box["y1"] + box["y2"]) / 2 * scale)
    red = pixels[y, x]
    assert red[0] > 200 and red[1] < 100 and red[2] < 100, red


def test_training_curves_and_confusion_match_their_tables(lake):
    page = read_page(lake["html"])
    assert [int(r["data-epoch"]) for r in table_rows(page, "training")] == [1, 2, 3]
    expected = {(r["truth"], r["predicted"] or "(missing)"): r["count"] for r in rows(
        str(lake["lake"]), "SELECT truth, predicted, count FROM evaluation_confusion "
                           "WHERE level = 'video'")}
    got = {(c["data-truth"], c["data-predicted"]): int(c["data-count"]) for c in page.cells}
    assert {k: v for k, v in got.items() if v} == {k: v for k, v in expected.items() if v}
    assert sum(got.values()) == 3


def test_strings_from_the_lake_are_escaped(lake):
    text = lake["html"].read_text()
    assert "&lt;script&gt;alert(1)&lt;.mp4" in text and "<script>" not in text
    assert "&lt;b&gt;bird&lt;/b&gt;" in text and "<b>bird" not in text


def test_stage_metrics_appear_only_when_recorded(lake, tmp_path: Path):
    assert NO_STAGES not in lake["html"].read_text()
    copy = tmp_path / "lake"
    shutil.copytree(lake["lake"], copy)
    (run_id,) = [r["run_id"] for r in rows(str(copy), "SELECT run_id FROM runs")]
    shutil.rmtree(copy / "run_stages")
    out = tmp_path / "none.html"
    assert report.main([str(copy), "--output", str(out), "--videos", "0"]) == 0
    page = read_page(out)
    assert NO_STAGES in " ".join(page.text) and not table_rows(page, "stage-totals")
    assert not [i for i in page.images if i["data-chart"].startswith("stage-")]
    # a hand-written run_stages: three columns, hostile names, no interval times
    (copy / "run_stages").mkdir()
    hostile = 'x" onclick="alert(1)'
    pq.write_table(pa.table({"run_id": [run_id] * 3, "stage": ["<i>infer", "decode", "decode"],
                             "analysis": [hostile, None, None], "busy_s": [2.5, 1.0, 0.5]}),
                   copy / "run_stages" / "part-0.parquet")
    out = tmp_path / "r.html"
    assert report.main([str(copy), "--output", str(out), "--videos", "0"]) == 0
    text = out.read_text()
    assert NO_STAGES not in text and "&lt;i&gt;infer" in text and "<i>" not in text
    assert 'onclick="' not in text
    page = read_page(out)
    totals = [(r["data-stage"], r["data-analysis"], float(r["data-busy-s"]))
              for r in table_rows(page, "stage-totals")]
    assert totals == [("decode", "", 1.5), ("<i>infer", hostile, 2.5)]  # unknown stages last
    assert "no interval times recorded" in text
    assert not [i for i in page.images if i["data-chart"].startswith("stage-")]
    assert "no training_metrics in the lake" in text


def _stderr_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize("case", ["no lake", "unknown run", "no folder", "output is a folder"])
def test_systemic_problems_exit_2_in_one_line(lake, tmp_path: Path, case: str, capsys):
    argv: dict[str, list[str]] = {
        "no lake": [str(tmp_path / "nothing"), "--output", str(tmp_path / "r.html")],
        "unknown run": [str(lake["lake"]), "--run", "nope", "--output", str(tmp_path / "r.html")],
        "no folder": [str(lake["lake"]), "--output", str(tmp_path / "missing" / "r.html")],
        "output is a folder": [str(lake["lake"]), "--output", str(tmp_path)],
    }
    assert report.main(argv[case]) == 2
    line = _stderr_line(capsys)
    assert line.startswith("vidlake report: error:"), line
    assert not (tmp_path / "r.html").exists()


def test_failure_reasons_are_capped_with_a_count_of_the_rest():
    import duckdb

    from pipeline.report import report_data

    con = duckdb.connect()
    con.execute("CREATE VIEW videos AS SELECT 'r1' AS run_id, 'error' AS status, "
                "'/v/' || i || '.mp4' AS uri, 'reason ' || (i % 25) AS error "
                "FROM range(100) t(i)")
    reasons, left = report_data.failures(con, "r1")
    assert len(reasons) == report_data.MAX_REASONS and left == 25 - report_data.MAX_REASONS
    assert all(len(r.examples) == report_data.MAX_EXAMPLES and r.videos == 4 for r in reasons)
