"""Evaluation: the metrics math, the majority-vote SQL, and `vidlake evaluate`
end to end on a hand-written lake."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from jobs import evaluate as evaluate_job
from pipeline.errors import ConfigError
from pipeline.evaluation.confusion_png import confusion_png
from pipeline.evaluation.metrics import evaluate
from pipeline.evaluation.predictions import (
    choose_table,
    predicted_labels,
    resolve_model_version,
)
from pipeline.lake.schemas import CLIP_LABELS
from pipeline.query.duckdb_views import connect


# -- metrics ---------------------------------------------------------------------
def test_metrics_by_hand_three_classes_one_missing_one_ignored():
    truth = {f"v{i}": label for i, label in enumerate(["cat"] * 4 + ["dog"] * 3 + ["fish"] * 3)}
    predicted = {"v0": "cat", "v1": "cat", "v2": "dog", "v3": "cat",  # cat: 3 right, 1 dog
                 "v4": "dog", "v5": "dog", "v6": "cat",  # dog: 2 right, 1 cat
                 "v7": "fish", "v8": "dog",  # fish: 1 right, 1 dog, v9 missing
                 "not-in-truth": "fish"}
    ev = evaluate(truth, predicted)
    assert ev.classes == ["cat", "dog", "fish"]
    np.testing.assert_array_equal(ev.confusion, [[3, 1, 0], [1, 2, 0], [0, 1, 1]])
    assert ev.confusion.dtype == np.int64
    np.testing.assert_array_equal(ev.missing, [0, 0, 1])
    np.testing.assert_array_equal(ev.support, [4, 3, 3])
    assert (ev.videos, ev.correct, ev.n_missing, ev.n_ignored) == (10, 6, 1, 1)
    assert ev.accuracy == pytest.approx(0.6)
    np.testing.assert_allclose(ev.precision, [3 / 4, 2 / 4, 1 / 1])
    np.testing.assert_allclose(ev.recall, [3 / 4, 2 / 3, 1 / 3])
    np.testing.assert_allclose(ev.f1, [3 / 4, 4 / 7, 1 / 2])


def test_metrics_class_never_predicted_or_never_true_scores_zero():
    # "z" is only predicted (recall 0 for lack of support); "x" is never
    # predicted (precision 0 by convention); "w" only appears for an ignored video.
    ev = evaluate({"a": "x", "b": "y"}, {"a": "z", "b": "y", "c": "w"})
    assert ev.classes == ["x", "y", "z"]
    np.testing.assert_array_equal(ev.confusion, [[0, 0, 1], [0, 1, 0], [0, 0, 0]])
    np.testing.assert_allclose(ev.precision, [0.0, 1.0, 0.0])
    np.testing.assert_allclose(ev.recall, [0.0, 1.0, 0.0])
    np.testing.assert_allclose(ev.f1, [0.0, 1.0, 0.0])
    assert ev.accuracy == pytest.approx(0.5)


def test_metrics_reject_empty_truth():
    with pytest.raises(ValueError, match="no truth"):
        evaluate({}, {"a": "x"})


# -- majority vote SQL -------------------------------------------------------------
def _con_with_clips(rows: list[dict[str, Any]]) -> Any:
    con = duckdb.connect()
    con.register("clips", pa.Table.from_pylist(rows, schema=CLIP_LABELS))
    con.execute("CREATE VIEW clip_labels AS SELECT * FROM clips")  # a view, as in a lake
    return con


def _clip(uri: str, label: str | None, score: float, version: str = "v1") -> dict[str, Any]:
    return {"uri": uri, "label": label, "score": score, "model": "m",
            "model_version": version, "run_id": "r1"}


def test_majority_then_summed_score_then_alphabetical():
    con = _con_with_clips([
        _clip("/a", "dog", 0.2), _clip("/a", "dog", 0.2), _clip("/a", "cat", 0.99),  # count
        _clip("/b", "dog", 0.9), _clip("/b", "cat", 0.4),  # 1-1: higher score wins
        _clip("/c", "dog", 0.5), _clip("/c", "cat", 0.5),  # full tie: alphabetical
        _clip("/d", None, 0.9),  # no label at all: no prediction
    ])
    assert predicted_labels(con, "clip_labels") == {"/a": "dog", "/b": "dog", "/c": "cat"}


def test_several_model_versions_need_a_choice():
    con = _con_with_clips([_clip("/a", "dog", 0.9, "v1"), _clip("/a", "cat", 0.9, "v2"),
                           _clip("/a", "cat", 0.1, "v2")])
    with pytest.raises(ConfigError, match=r"v1, v2.*--model-version"):
        resolve_model_version(con, "clip_labels", None)
    with pytest.raises(ConfigError, match="v3"):
        resolve_model_version(con, "clip_labels", "v3")
    assert resolve_model_version(con, "clip_labels", "v1") == "v1"
    assert predicted_labels(con, "clip_labels", "v1") == {"/a": "dog"}
    assert predicted_labels(con, "clip_labels", "v2") == {"/a": "cat"}


def test_choose_table():
    con = _con_with_clips([_clip("/a", "dog", 0.9)])
    assert choose_table(con, "auto") == "clip_labels"
    with pytest.raises(ConfigError, match="no frame_labels"):
        choose_table(con, "frame_labels")
    with pytest.raises(ConfigError, match="no clip_labels or frame_labels"):
        choose_table(duckdb.connect(), "auto")


def test_png_rejects_labels_that_do_not_match_the_counts():
    with pytest.raises(ValueError, match="do not match"):
        confusion_png(np.zeros((2, 2), dtype=np.int64), ["a", "b"], ["a"])


# -- vidlake evaluate, end to end ----------------------------------------------------
def _write_lake(root: Path, videos: Path, version: str = "v1", part: str = "a") -> None:
    """Clips per video: a 2:1 cat, b 2:1 dog, c 1:1 dog by score, d 2:0 dog,
    z (not in the truth) bird; e (in the truth) has no clip."""
    clips = {"a": [("cat", 0.6), ("cat", 0.7), ("dog", 0.9)],
             "b": [("dog", 0.5), ("dog", 0.5), ("cat", 0.9)],
             "c": [("dog", 0.9), ("cat", 0.4)],
             "d": [("dog", 0.8), ("dog", 0.8)],
             "z": [("bird", 0.9)]}
    rows = [{**_clip(str(videos / f"{name}.mp4"), label, score, version), "clip_index": i,
             "start_frame": 16 * i, "end_frame": 16 * (i + 1), "start_s": 0.64 * i,
             "end_s": 0.64 * (i + 1), "topk_labels": [label], "topk_scores": [score]}
            for name, labels in clips.items() for i, (label, score) in enumerate(labels)]
    (root / "clip_labels").mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=CLIP_LABELS),
                   root / "clip_labels" / f"part-{part}.parquet")


@pytest.fixture
def lake_and_truth(tmp_path: Path) -> tuple[Path, Path, Path]:
    videos = tmp_path / "videos"
    lake = tmp_path / "lake"
    _write_lake(lake, videos)
    truth = tmp_path / "truth.csv"
    truth.write_text("uri,label,split\n" + "".join(
        f"{videos / name}.mp4,{label},{split}\n" for name, label, split in
        [("a", "cat", "train"), ("b", "cat", "val"), ("c", "dog", "val"),
         ("d", "dog", "train"), ("e", "bird", "val")]))
    return lake, truth, videos


def test_evaluate_job_writes_tables_png_and_report(lake_and_truth, capsys):
    lake, truth, _ = lake_and_truth
    assert evaluate_job.main([str(lake), "--truth", str(truth)]) == 0
    out = capsys.readouterr().out
    assert "accuracy 0.600 (3/5 videos, 1 missing)" in out
    assert "ignored 1 predicted videos" in out
    con = connect(str(lake))  # the results are lake tables: one view each
    summary = con.sql("SELECT * FROM evaluation_summary").to_arrow_table()
    assert summary.num_rows == 1
    row = summary.to_pylist()[0]
    assert {k: row[k] for k in ("table", "model_version", "videos", "correct", "missing",
                                "truth")} == {
        "table": "clip_labels", "model_version": "v1", "videos": 5, "correct": 3,
        "missing": 1, "truth": str(truth)}
    assert row["accuracy"] == pytest.approx(0.6)
    written = pq.read_schema(lake / "evaluation_summary" / "part-0.parquet")
    assert written.field("evaluated_at").type == pa.timestamp("us", tz="UTC")
    assert written.field("videos").type == pa.int64()
    per_class = con.sql("SELECT label, precision, recall, f1, support "
                        "FROM evaluation_per_class ORDER BY label").fetchall()
    assert [r[0] for r in per_class] == ["bird", "cat", "dog"]
    np.testing.assert_allclose(np.array([r[1:4] for r in per_class], dtype=np.float64),
                               [[0.0, 0.0, 0.0], [1.0, 0.5, 2 / 3], [2 / 3, 1.0, 0.8]])
    assert [r[4] for r in per_class] == [1, 2, 2]
    confusion = dict(((t, p), n) for t, p, n in con.sql(
        "SELECT truth, predicted, count FROM evaluation_confusion").fetchall())
    assert len(confusion) == 3 * 3 + 1  # every pair, zeros included, plus bird's missing
    assert confusion[("cat", "cat")] == 1 and confusion[("cat", "dog")] == 1
    assert confusion[("dog", "dog")] == 2 and confusion[("bird", "bird")] == 0
    assert confusion[("bird", None)] == 1
    assert sum(confusion.values()) == 5
    with Image.open(lake / "evaluation_confusion.png") as image:
        assert image.format == "PNG" and image.width > 0 and image.height > 0
        colours = {c for _, c in image.convert("RGB").getcolors(maxcolors=1 << 20) or []}
    assert (8, 48, 107) in colours  # dog's row is all dog: a cell of full-row colour


def test_rerun_overwrites_results_in_output_dir(lake_and_truth, tmp_path, capsys):
    lake, truth, videos = lake_and_truth
    out = tmp_path / "results"
    assert evaluate_job.main([str(lake), "--truth", str(truth), "--output", str(out)]) == 0
    _write_lake(lake, videos, version="v2", part="b")  # a second model in the lake
    assert evaluate_job.main([str(lake), "--truth", str(truth), "--output", str(out)]) == 2
    assert "vidlake evaluate: error:" in capsys.readouterr().err
    assert evaluate_job.main([str(lake), "--truth", str(truth), "--output", str(out),
                              "--model-version", "v2"]) == 0
    assert sorted(p.name for p in (out / "evaluation_summary").iterdir()) == ["part-0.parquet"]
    summary = pq.read_table(out / "evaluation_summary").to_pylist()
    assert [(r["model_version"], r["correct"]) for r in summary] == [("v2", 3)]
    assert not (lake / "evaluation_summary").exists()
    png = (out / "evaluation_confusion.png").read_bytes()
    assert Image.open(io.BytesIO(png)).size[0] > 0


def test_missing_table_is_a_config_error(lake_and_truth, capsys):
    lake, truth, _ = lake_and_truth
    assert evaluate_job.main([str(lake), "--truth", str(truth), "--table", "frame_labels"]) == 2
    assert "no frame_labels" in capsys.readouterr().err
