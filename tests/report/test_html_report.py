"""`vidlake report` end to end: a real lake from `vidlake label` (shots,
frame_labels, detections over small real videos, a bad file named with
`<script>`, a video deleted after labelling), `vidlake evaluate` on it, a
training_metrics table from the trainer's writer; the HTML parsed back, every
embedded image decoded, and the numbers beside each figure compared with
DuckDB queries of the tables they came from."""

from __future__ import annotations

import base64
import csv
import io
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from jobs import evaluate, label, report
from pipeline.report.contact_sheet import HEADER, row_height
from pipeline.report.frame_pictures import STRIP_WIDTH, frame_size
from pipeline.report.html_report import NO_STAGES
from pipeline.report.thumbnails import thumb_size
from pipeline.storage_options import StorageOptions
from pipeline.synthetic.video_writer import write_video
from pipeline.training.metrics_table import write_metrics
from tests.lakes import rows

LABELS = ["cat", "dog", "<b>bird</b>", "fish"]
EVIL = "<script>alert(1)<.mp4"  # not a video: fails, and its uri must come out escaped
HEIGHT, WIDTH = 48, 64
HISTORY = [{"epoch": e, "train_loss": 2.0 / e, "val_loss": 2.5 / e, "train_acc": 0.2 * e,
            "val_acc": 0.15 * e, "train_clips": 40, "val_clips": 8, "skipped": 0,
            "clips_per_s": 10.0 + e, "train_s": 4.0, "lr": 0.01, "workers": 2}
           for e in (1, 2, 3)]


def _frames(n: int, cut: int):
    """A white 12x16 box moving right over a background whose blue jumps at `cut`
    (a shot cut) and whose red is the frame index (the label model reads it)."""
    for i in range(n):
        frame = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
        frame[..., 0] = i % 256
        frame[..., 2] = 40 if i < cut else 220
        x = 4 + i % 30
        frame[10:26, x:x + 12] = 255
        yield frame


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("report")
    source = root / "videos"
    source.mkdir()
    for k, name in enumerate(("v0.mp4", "v1.mp4", "gone.mp4")):
        write_video(source / name, _frames(40 + 10 * k, 20), fps=25.0, codec="lossless")
    (source / EVIL).write_text("not a video\n" * 10)
    (root / "labels.txt").write_text("\n".join(LABELS))
    out = root / "lake"
    assert label.main([
        str(source), "--output", str(out), "--engine", "sequential", "--analysis", "shots",
        "--analysis", "frame_labels:model=tests.known_models:frame_index,sample=every:2,"
        f"size=32,labels={root / 'labels.txt'}",
        "--analysis", "detections:model=tests.known_models:white_box_detector,"
        "sample=every:10"]) == 0  # the bad file is a per-video failure
    (source / "gone.mp4").unlink()  # its shots and boxes cannot be drawn any more
    truth = root / "truth.csv"
    with truth.open("w", newline="") as handle:
        csv.writer(handle).writerows([("uri", "label"), (str(source / "v0.mp4"), "cat"),
                                      (str(source / "v1.mp4"), "dog"),
                                      (str(source / EVIL), "fish")])
    assert evaluate.main([str(out), "--truth", str(truth)]) == 0
    training = root / "train"
    write_metrics(str(training), HISTORY, StorageOptions())
    html = root / "report.html"
    assert report.main([str(out), "--output", str(html), "--training-dir",
                        str(training)]) == 0
    return {"lake": out, "html": html, "root": root, "training": training}


class Page(HTMLParser):
    """Every <img>'s attributes, every <tr>'s data- attributes with the ids of
    the table and the innermost div around it, and all text."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict[str, str]] = []
        self.rows: list[dict[str, str]] = []
        self.cells: list[dict[str, str]] = []
        self.text: list[str] = []
        self._table: list[str] = []
        self._divs: list[dict[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if tag == "img":
            self.images.append(found)
        elif tag == "table":
            self._table.append(found.get("id", ""))
        elif tag == "div":
            self._divs.append(found)
        elif tag == "tr" and any(k.startswith("data-") for k in found):
            div = self._divs[-1] if self._divs else {}
            self.rows.append({**found, "table_id": self._table[-1], **{
                f"div-{k}": v for k, v in div.items()}})
        elif tag == "span" and found.get("class") == "cell":
            self.cells.append(found)

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._table.pop()
        elif tag == "div":
            self._divs.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _page(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def _image(attributes: dict[str, str]) -> Image.Image:
    prefix = "data:image/png;base64,"
    assert attributes["src"].startswith(prefix)  # inline: nothing to fetch
    image = Image.open(io.BytesIO(base64.b64decode(attributes["src"][len(prefix):])))
    image.load()
    return image


def _table_rows(page: Page, table_id: str) -> list[dict[str, str]]:
    return [r for r in page.rows if r["table_id"] == table_id]


def test_every_image_is_inline_and_decodes(lake):
    page = _page(lake["html"])
    kinds = [i["data-chart"] for i in page.images]
    assert sorted(set(kinds)) == ["confusion", "detection-frame", "labels", "shot-strip",
                                  "throughput", "training"]
    for attributes in page.images:
        assert _image(attributes).size[0] > 10
    text = lake["html"].read_text()
    assert "http://" not in text and "https://" not in text and "<script" not in text
    assert "<link" not in text


def test_failures_match_a_group_by_on_videos(lake):
    expected = {r["error"]: r["n"] for r in rows(str(lake["lake"]),
                "SELECT error, count(*) AS n FROM videos WHERE status <> 'ok' GROUP BY ALL")}
    got = {r["data-reason"]: int(r["data-count"]) for r in _table_rows(_page(lake["html"]),
                                                                        "failures")}
    assert got == expected and sum(got.values()) == 1


def test_label_bars_match_counts_per_model_version(lake):
    page = _page(lake["html"])
    expected = {(r["model_version"], r["label"]): r["n"] for r in rows(
        str(lake["lake"]), "SELECT model_version, label, count(*) AS n FROM frame_labels "
                           "GROUP BY ALL")}
    got = {(r["div-data-model-version"], r["data-label"]): int(r["data-count"])
           for r in page.rows if r.get("div-data-table") == "frame_labels"}
    assert got == expected
    charts = [i for i in page.images if i["data-chart"] == "labels"]
    assert [c["data-model-version"] for c in charts] == sorted({v for v, _ in expected})


def test_throughput_accounts_for_every_video_and_frame(lake):
    buckets = _table_rows(_page(lake["html"]), "throughput")
    (totals,) = rows(str(lake["lake"]), "SELECT count(*) AS videos, sum(n_sampled) AS frames "
                                         "FROM videos")
    assert sum(int(b["data-videos"]) for b in buckets) == totals["videos"] == 4
    assert sum(int(b["data-frames"]) for b in buckets) == totals["frames"]


def test_shot_strips_show_each_shot_and_name_the_video_that_is_gone(lake):
    page = _page(lake["html"])
    strips = {i["alt"].removeprefix("shot-strip of ").rsplit("/", 1)[-1]: _image(i)
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
    page = _page(lake["html"])
    frames = {i["alt"].rsplit("/", 1)[-1]: _image(i).convert("RGB")
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
    page = _page(lake["html"])
    assert [int(r["data-epoch"]) for r in _table_rows(page, "training")] == [1, 2, 3]
    expected = {(r["truth"], r["predicted"] or "(missing)"): r["count"] for r in rows(
        str(lake["lake"]), "SELECT truth, predicted, count FROM evaluation_confusion")}
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
    assert NO_STAGES in out.read_text()
    (copy / "run_stages").mkdir()
    pq.write_table(pa.table({"run_id": [run_id, run_id], "stage": ["decode", "<i>infer"],
                             "busy_s": [1.5, 2.5]}), copy / "run_stages" / "part-0.parquet")
    out = tmp_path / "r.html"
    assert report.main([str(copy), "--output", str(out), "--videos", "0"]) == 0
    text = out.read_text()
    assert NO_STAGES not in text and "&lt;i&gt;infer" in text
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
