"""Evaluation: the metrics math, the majority-vote SQL, and `vidlake evaluate`
end to end on a hand-written lake."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from PIL import Image

from jobs import evaluate as evaluate_job
from pipeline.errors import ConfigError
from pipeline.evaluation.confusion_png import confusion_png
from pipeline.evaluation.metrics import Evaluation, evaluate, from_counts
from pipeline.evaluation.predictions import (
    choose_table,
    clip_counts,
    has_topk,
    has_topk_scores,
    predicted_labels,
    resolve_model_version,
    top_labels,
)
from pipeline.lake.schemas import CLIP_LABELS, FRAME_LABELS
from pipeline.query.duckdb_views import connect
from pipeline.report.report_data import confusion as report_confusion


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


def test_macro_and_weighted_averages_by_hand_on_imbalanced_classes():
    # truth: 6 a, 3 b, 1 c; "d" is only ever predicted (support 0)
    truth = {f"v{i}": label for i, label in enumerate(["a"] * 6 + ["b"] * 3 + ["c"])}
    predicted = {**{f"v{i}": "a" for i in range(5)}, "v5": "d",  # a: 5 right, 1 d
                 "v6": "a", "v7": "a", "v8": "b",  # b: 1 right, 2 a
                 "v9": "b"}  # c: predicted b
    ev = evaluate(truth, predicted)
    assert ev.classes == ["a", "b", "c", "d"]
    np.testing.assert_array_equal(ev.support, [6, 3, 1, 0])
    np.testing.assert_allclose(ev.precision, [5 / 7, 1 / 2, 0.0, 0.0])  # c, d: never right
    np.testing.assert_allclose(ev.recall, [5 / 6, 1 / 3, 0.0, 0.0])
    np.testing.assert_allclose(ev.f1, [10 / 13, 2 / 5, 0.0, 0.0])
    macro, weighted = ev.average("macro"), ev.average("weighted")
    # macro: every class counts once, d included; F1 is the mean of the F1s
    assert (macro.precision, macro.recall, macro.f1) == pytest.approx((17 / 56, 7 / 24, 19 / 65))
    # weighted by support (6, 3, 1, 0): the big class dominates, d weighs nothing
    assert (weighted.precision, weighted.recall, weighted.f1) == pytest.approx(
        (81 / 140, 3 / 5, 189 / 325))
    assert weighted.recall == pytest.approx(ev.accuracy)  # an identity of the definitions
    assert macro.support == weighted.support == 10
    with pytest.raises(ValueError, match="average must be"):
        ev.average("micro")


def test_top5_and_missing_rows_counted_from_counts():
    ev = from_counts({("cat", "cat"): 3, ("cat", "dog"): 2, ("dog", None): 1}, n_ignored=4,
                     top5_correct=4)
    assert (ev.samples, ev.correct, ev.n_missing, ev.n_ignored) == (6, 3, 1, 4)
    assert ev.accuracy == pytest.approx(3 / 6) and ev.top5_accuracy == pytest.approx(4 / 6)
    np.testing.assert_array_equal(ev.support, [5, 1])
    np.testing.assert_allclose(ev.recall, [3 / 5, 0.0])  # the missing row is dog's miss
    assert evaluate({"a": "x"}, {"a": "x"}).top5_accuracy is None  # no top-k labels given
    top5 = evaluate({"a": "x", "b": "y", "c": "z"}, {"a": "w", "b": "y"},
                    {"a": ["w", "v", "u", "t", "s", "x"], "b": ["y"]})
    assert top5.top5_correct == 1  # a: x is 6th; b: first; c: no prediction at all


def test_nothing_to_score_gives_zeros_not_nan():
    ev = from_counts({}, top5_correct=0)
    assert ev.classes == [] and ev.samples == 0
    assert (ev.accuracy, ev.top5_accuracy) == (0.0, 0.0)
    assert ev.average("macro").f1 == 0.0 and ev.average("weighted").precision == 0.0
    ev.check()


def _broken(**changes: Any) -> Evaluation:
    good = evaluate({"a": "x", "b": "y"}, {"a": "x", "b": "x"})
    good.check()
    return Evaluation(**{**good.__dict__, **changes})


@pytest.mark.parametrize(("changes", "message"), [
    ({"precision": np.array([np.nan, 0.0])}, "precision holds a value outside"),
    ({"recall": np.array([1.0, np.inf])}, "recall holds a value outside"),
    ({"f1": np.array([1.5, 0.0])}, "f1 holds a value outside"),
    ({"support": np.array([1, 2])}, "support is not"),
    ({"missing": np.array([-1, 0]), "support": np.array([0, 1])}, "missing holds a negative"),
    ({"top5_correct": 3}, "top5_accuracy is 1.5"),
    ({"n_ignored": -1}, "ignored -1"),
    ({"precision": np.array([0.5])}, "precision has shape"),
])
def test_check_rejects_nan_inf_and_out_of_range(changes: dict[str, Any], message: str):
    with pytest.raises(ValueError, match=message):
        _broken(**changes).check()


# -- majority vote SQL -------------------------------------------------------------
def _con_with_clips(rows: list[dict[str, Any]]) -> Any:
    con = duckdb.connect()
    con.register("clips", pa.Table.from_pylist(rows, schema=CLIP_LABELS))
    con.execute("CREATE VIEW clip_labels AS SELECT * FROM clips")  # a view, as in a lake
    return con


def _clip(uri: str, label: str | None, score: float, version: str = "v1",
          topk: list[str] | None = None,
          topk_scores: list[float] | None = None) -> dict[str, Any]:
    return {"uri": uri, "label": label, "score": score, "model": "m",
            "model_version": version, "run_id": "r1", "topk_labels": topk,
            "topk_scores": topk_scores}


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


def test_video_top5_majority_first_then_summed_topk_scores():
    con = _con_with_clips([
        _clip("/v", "dog", 0.5, topk=["dog", "cat", "fish", "bird", "cow"],
              topk_scores=[0.5, 0.2, 0.1, 0.1, 0.1]),
        _clip("/v", "dog", 0.5, topk=["dog", "fish", "cat", "ant", "cow"],
              topk_scores=[0.5, 0.3, 0.1, 0.05, 0.05]),
        _clip("/v", "cat", 0.8, topk=["cat", "ant", "dog", "owl", "fish"],
              topk_scores=[0.8, 0.05, 0.04, 0.03, 0.01]),
        _clip("/v", "dog", 0.5, version="v2", topk=["dog", "bird", "owl", "gnu", "yak"],
              topk_scores=[0.5, 0.4, 0.05, 0.03, 0.02]),
        _clip("/w", None, 0.0),  # no label: no majority, no top-5
    ])
    assert has_topk(con, "clip_labels") and has_topk_scores(con, "clip_labels", "v1")
    # dog has the votes (2:1) though cat sums more (1.1 vs 1.04): dog first; then
    # summed: cat 1.1, fish 0.41, cow 0.15, ant 0.1 = bird 0.1 (alphabetical), owl
    # 0.03; v2's row is another model's
    ranked = top_labels(con, "clip_labels", "v1")
    assert ranked == {"/v": ["dog", "cat", "fish", "cow", "ant"]}
    assert ranked["/v"][0] == predicted_labels(con, "clip_labels", "v1")["/v"]
    assert top_labels(con, "clip_labels", "v1", k=2) == {"/v": ["dog", "cat"]}
    # every version: bird now sums 0.5
    assert top_labels(con, "clip_labels") == {"/v": ["dog", "cat", "bird", "fish", "cow"]}


def test_video_top5_needs_topk_scores_on_every_labelled_row():
    rows = [_clip("/v", "dog", 0.5, topk=["dog", "cat"], topk_scores=[0.5, 0.5]),
            _clip("/v", None, 0.0, topk=["dog"])]  # unlabelled: not needed
    assert has_topk_scores(_con_with_clips(rows), "clip_labels")
    for scores in (None, [0.5]):  # none, or fewer than the labels
        broken = [*rows, _clip("/v", "cat", 0.5, topk=["cat", "dog"], topk_scores=scores)]
        assert not has_topk_scores(_con_with_clips(broken), "clip_labels")
    assert has_topk_scores(_con_with_clips(broken), "clip_labels", "v2") is True  # no rows


def test_clip_counts_score_each_row_against_its_videos_truth():
    con = _con_with_clips([
        _clip("/a", "cat", 0.9, topk=["cat", "dog"]),  # right
        _clip("/a", "dog", 0.6, topk=["dog", "ant", "bee", "cow", "cat"]),  # top-5 (5th)
        _clip("/a", "dog", 0.6, topk=["dog", "ant", "bee", "cow", "emu", "cat"]),  # 6th: no
        _clip("/a", None, 0.0, topk=["cat"]),  # no label: missing, top-5 too
        _clip("/b", "dog", 0.7, topk=["dog", "cat"]),  # right
        _clip("/b", "dog", 0.7, version="v2", topk=["dog"]),  # another model
        _clip("/z", "cat", 0.9, topk=["cat"]),  # not in the truth: ignored
    ])
    got = clip_counts(con, "clip_labels", {"/a": "cat", "/b": "dog", "/e": "cat"}, "v1")
    assert got.counts == {("cat", "cat"): 1, ("cat", "dog"): 2, ("cat", None): 1,
                          ("dog", "dog"): 1}
    assert (got.ignored, got.top_k_correct, got.shortest_topk) == (1, 3, 2)
    everything = clip_counts(con, "clip_labels", {"/a": "cat", "/b": "dog"}, None, k=None)
    assert everything.counts[("dog", "dog")] == 2 and everything.top_k_correct is None
    assert everything.shortest_topk is None


def test_png_rejects_labels_that_do_not_match_the_counts():
    with pytest.raises(ValueError, match="do not match"):
        confusion_png(np.zeros((2, 2), dtype=np.int64), ["a", "b"], ["a"])


# -- vidlake evaluate, end to end ----------------------------------------------------
VOCABULARY = ["bird", "cat", "cow", "dog", "fish", "owl"]


def _topk(label: str) -> list[str]:
    """A 6-long top-k list: `label` first, then the vocabulary in order."""
    return [label, *(v for v in VOCABULARY if v != label)]


_TAIL = [0.05, 0.04, 0.03, 0.02, 0.01]  # scores of a row's 2nd to 6th topk_labels


def _topk_columns(label: str | None, score: float,
                  topk: list[str] | None) -> dict[str, list[Any]]:
    """topk_labels (`topk`, or `_topk(label)` when None) and their topk_scores."""
    listed = topk if topk is not None else _topk(label) if label is not None else []
    return {"topk_labels": listed, "topk_scores": [score, *_TAIL][:len(listed)]}


def _write_lake(root: Path, videos: Path, version: str = "v1", part: str = "a") -> None:
    """Clips per video (label, score, topk_labels; None: `_topk(label)`):
    a 2:1 cat, b 2:1 dog, c 1:1 dog by score, d 2:0 dog plus a clip with no
    label, z (not in the truth) bird; e (in the truth) has no clip. Truth a, b
    cat, c, d dog: a's dog clip lists cat 6th, b's second dog clip too, c's
    cat clip lists dog 5th. topk_scores: the clip's score, then `_TAIL`."""
    sixth = ["dog", "fish", "cow", "owl", "bird", "cat"]
    clips: dict[str, list[tuple[str | None, float, list[str] | None]]] = {
        "a": [("cat", 0.6, None), ("cat", 0.7, None), ("dog", 0.9, sixth)],
        "b": [("dog", 0.5, None), ("dog", 0.5, sixth), ("cat", 0.9, None)],
        "c": [("dog", 0.9, None), ("cat", 0.4, ["cat", "bird", "fish", "cow", "dog"])],
        "d": [("dog", 0.8, None), ("dog", 0.8, None), (None, 0.0, [])],
        "z": [("bird", 0.9, None)]}
    rows = [{**_clip(str(videos / f"{name}.mp4"), label, score, version), "clip_index": i,
             "start_frame": 16 * i, "end_frame": 16 * (i + 1), "start_s": 0.64 * i,
             "end_s": 0.64 * (i + 1),
             **_topk_columns(label, score, topk)}
            for name, labels in clips.items() for i, (label, score, topk) in enumerate(labels)]
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


# By hand, video level (a cat, b dog, c dog, d dog, e missing; classes bird,
# cat, dog): top-5 a, b (cat sums 0.95, first after dog), c, d; e has no prediction.
VIDEO_PER_CLASS = {"bird": (0.0, 0.0, 0.0, 1), "cat": (1.0, 1 / 2, 2 / 3, 2),
                   "dog": (2 / 3, 1.0, 4 / 5, 2),
                   "macro avg": (5 / 9, 1 / 2, 22 / 45, 5),
                   "weighted avg": (2 / 3, 3 / 5, 44 / 75, 5)}
# Clip level, 11 rows of truth videos: truth cat -> cat 3, dog 3; truth dog ->
# dog 3, cat 1, no label 1; top-5 misses: a's and b's "cat 6th", d's unlabelled.
CLIP_PER_CLASS = {"cat": (3 / 4, 1 / 2, 3 / 5, 6), "dog": (1 / 2, 3 / 5, 6 / 11, 5),
                  "macro avg": (5 / 8, 11 / 20, 63 / 110, 11),
                  "weighted avg": (7 / 11, 6 / 11, 348 / 605, 11)}


def _per_class(con: Any, level: str) -> dict[str, tuple[float, float, float, int]]:
    rows = con.execute("SELECT label, precision, recall, f1, support FROM evaluation_per_class "
                       "WHERE level = ?", [level]).fetchall()
    return {r[0]: tuple(r[1:]) for r in rows}


def _assert_per_class(got: dict[str, Any], expected: dict[str, Any]) -> None:
    assert list(got) == list(expected)  # class rows sorted, then macro, then weighted
    for label, values in expected.items():
        assert got[label] == pytest.approx(values), label


def test_evaluate_job_writes_both_levels_tables_png_and_report(lake_and_truth, capsys):
    lake, truth, _ = lake_and_truth
    assert evaluate_job.main([str(lake), "--truth", str(truth)]) == 0
    out = capsys.readouterr().out
    clip_at, video_at = out.index("clip level: each row of clip_labels"), out.index("video level")
    assert clip_at < video_at
    clip_text, video_text = out[clip_at:video_at], out[video_at:]
    assert "accuracy 0.545 (6/11 clips, 1 missing)" in clip_text
    assert "top-5 accuracy 0.727 (8/11 clips)" in clip_text
    assert "ignored 1 clips of videos absent from the truth" in clip_text
    assert "macro avg         0.625   0.550  0.573       11" in clip_text
    assert "weighted avg      0.636   0.545  0.575       11" in clip_text
    assert "accuracy 0.600 (3/5 videos, 1 missing)" in video_text
    assert "top-5 accuracy 0.800 (4/5 videos)" in video_text
    assert "ignored 1 predicted videos" in video_text
    assert "macro avg         0.556   0.500  0.489        5" in video_text
    assert "weighted avg      0.667   0.600  0.587        5" in video_text
    assert "note:" not in out  # every labelled row holds at least 5 topk_labels

    con = connect(str(lake))  # the results are lake tables: one view each
    summary = con.sql("SELECT * FROM evaluation_summary").to_arrow_table().to_pylist()
    assert [r["level"] for r in summary] == ["video", "clip"]  # video first, as before
    keys = ("table", "model_version", "videos", "samples", "correct", "missing", "ignored",
            "top5_correct", "truth")
    assert [tuple(r[k] for k in keys) for r in summary] == [
        ("clip_labels", "v1", 5, 5, 3, 1, 1, 4, str(truth)),
        ("clip_labels", "v1", 5, 11, 6, 1, 1, 8, str(truth))]
    assert [(r["accuracy"], r["top5_accuracy"]) for r in summary] == [
        pytest.approx((3 / 5, 4 / 5)), pytest.approx((6 / 11, 8 / 11))]
    written = pq.read_schema(lake / "evaluation_summary" / "part-0.parquet")
    assert written.field("evaluated_at").type == pa.timestamp("us", tz="UTC")
    assert written.field("videos").type == pa.int64()
    _assert_per_class(_per_class(con, "video"), VIDEO_PER_CLASS)
    _assert_per_class(_per_class(con, "clip"), CLIP_PER_CLASS)
    averages = con.sql("SELECT level, label, average FROM evaluation_per_class "
                       "WHERE average IS NOT NULL").fetchall()
    assert averages == [("video", "macro avg", "macro"), ("video", "weighted avg", "weighted"),
                        ("clip", "macro avg", "macro"), ("clip", "weighted avg", "weighted")]

    confusion = {(lv, t, p): n for lv, t, p, n in con.sql(
        "SELECT level, truth, predicted, count FROM evaluation_confusion").fetchall()}
    video = {k[1:]: n for k, n in confusion.items() if k[0] == "video"}
    assert len(video) == 3 * 3 + 1  # every pair, zeros included, plus bird's missing
    assert video[("cat", "cat")] == 1 and video[("cat", "dog")] == 1
    assert video[("dog", "dog")] == 2 and video[("bird", "bird")] == 0
    assert video[("bird", None)] == 1
    assert sum(video.values()) == 5
    clip = {k[1:]: n for k, n in confusion.items() if k[0] == "clip"}
    assert clip == {("cat", "cat"): 3, ("cat", "dog"): 3, ("dog", "cat"): 1, ("dog", "dog"): 3,
                    ("dog", None): 1}
    for name in ("evaluation_confusion.png", "evaluation_confusion_clip.png"):
        with Image.open(lake / name) as image:
            assert image.format == "PNG" and image.width > 0 and image.height > 0
            colours = {c for _, c in image.convert("RGB").getcolors(maxcolors=1 << 20) or []}
        assert ((8, 48, 107) in colours) == (name == "evaluation_confusion.png")  # dog's
        # video row is all dog: a cell of full-row colour; no clip row is


def test_readers_of_the_tables_before_levels_still_work(lake_and_truth):
    lake, truth, _ = lake_and_truth
    assert evaluate_job.main([str(lake), "--truth", str(truth)]) == 0
    before = {"evaluation_summary": [
        ("table", pa.string()), ("model_version", pa.string()), ("videos", pa.int64()),
        ("correct", pa.int64()), ("missing", pa.int64()), ("accuracy", pa.float64()),
        ("truth", pa.string()), ("evaluated_at", pa.timestamp("us", tz="UTC"))],
        "evaluation_per_class": [("label", pa.string()), ("precision", pa.float64()),
                                 ("recall", pa.float64()), ("f1", pa.float64()),
                                 ("support", pa.int64())],
        "evaluation_confusion": [("truth", pa.string()), ("predicted", pa.string()),
                                 ("count", pa.int64())]}
    for name, fields in before.items():  # the old columns lead, same names and types
        schema = pq.read_schema(lake / name / "part-0.parquet")
        assert [(f.name, f.type) for f in schema][:len(fields)] == fields, name
    new = report_confusion(connect(str(lake)))
    assert new is not None
    assert (new.summary["correct"], new.summary["videos"]) == (3, 5)  # video level
    assert sum(map(sum, new.counts)) == 5 and new.columns == ["bird", "cat", "dog", "(missing)"]
    # a lake evaluated before levels existed: video rows only, no `level` column
    for name, fields in before.items():
        table = pq.read_table(lake / name / "part-0.parquet")
        video = table.filter(pc.equal(table["level"], "video"))
        if name == "evaluation_per_class":
            video = video.filter(pc.is_null(video["average"]))
        pq.write_table(video.select([n for n, _ in fields]), lake / name / "part-0.parquet")
    old_read = report_confusion(connect(str(lake)))
    assert old_read is not None
    assert (old_read.summary, old_read.counts) == (new.summary, new.counts)


def test_frame_labels_with_short_topk_and_a_table_without_topk(tmp_path: Path, capsys):
    videos = tmp_path / "videos"
    truth = tmp_path / "truth.csv"
    truth.write_text(f"uri,label\n{videos / 'a.mp4'},cat\n{videos / 'b.mp4'},dog\n")
    frames = [{"uri": str(videos / f"{name}.mp4"), "frame_index": i, "timestamp_s": 0.04 * i,
               "label": label, "score": 0.9, "topk_labels": [label, "dog"][:k],
               "model_version": "v1"}
              for name, labels, k in (("a", ["cat", "cat", "dog"], 1), ("b", ["cat"], 2))
              for i, label in enumerate(labels)]
    lake = tmp_path / "lake"
    (lake / "frame_labels").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(frames, schema=FRAME_LABELS),
                   lake / "frame_labels" / "part-a.parquet")
    assert evaluate_job.main([str(lake), "--truth", str(truth)]) == 0
    out = capsys.readouterr().out
    assert "clip level: each row of frame_labels" in out
    assert "accuracy 0.500 (2/4 frames, 0 missing)" in out
    assert "accuracy 0.500 (1/2 videos, 0 missing)" in out  # a cat; b cat
    # a's frames hold 1 label: no top-5 at either level (not a top-1 called top-5)
    assert out.count("top-5 accuracy n/a (rows hold as few as 1 topk_labels: labelled "
                     "with --top-k below 5, or by a model with fewer classes)") == 2
    rows = connect(str(lake)).execute("SELECT level, top5_correct, top5_accuracy "
                                      "FROM evaluation_summary").fetchall()
    assert rows == [("video", None, None), ("clip", None, None)]
    # the same frames without topk columns: no top-5 at either level
    no_topk = pa.Table.from_pylist(frames, schema=FRAME_LABELS).drop_columns(
        ["topk_labels", "topk_scores"])
    pq.write_table(no_topk, lake / "frame_labels" / "part-a.parquet")
    assert evaluate_job.main([str(lake), "--truth", str(truth)]) == 0
    out = capsys.readouterr().out
    assert out.count("top-5 accuracy n/a (the table has no topk_labels)") == 2
    rows = connect(str(lake)).execute("SELECT level, top5_correct, top5_accuracy, accuracy "
                                      "FROM evaluation_summary").fetchall()
    assert rows == [("video", None, None, 0.5), ("clip", None, None, 0.5)]


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
    assert [(r["level"], r["model_version"], r["correct"]) for r in summary] == [
        ("video", "v2", 3), ("clip", "v2", 6)]
    assert not (lake / "evaluation_summary").exists()
    png = (out / "evaluation_confusion.png").read_bytes()
    assert Image.open(io.BytesIO(png)).size[0] > 0


def test_missing_table_is_a_config_error(lake_and_truth, capsys):
    lake, truth, _ = lake_and_truth
    assert evaluate_job.main([str(lake), "--truth", str(truth), "--table", "frame_labels"]) == 2
    assert "no frame_labels" in capsys.readouterr().err


def test_rows_without_topk_scores_have_clip_top5_but_no_video_top5(lake_and_truth, capsys):
    lake, truth, _ = lake_and_truth
    part = lake / "clip_labels" / "part-a.parquet"
    pq.write_table(pq.read_table(part).drop_columns(["topk_scores"]), part)
    assert evaluate_job.main([str(lake), "--truth", str(truth)]) == 0
    out = capsys.readouterr().out
    video_text = out[out.index("video level"):]
    assert "top-5 accuracy 0.727 (8/11 clips)" in out[:out.index("video level")]
    assert "top-5 accuracy n/a (rows lack topk_scores to rank a video's labels)" in video_text
    rows = connect(str(lake)).execute("SELECT level, top5_correct FROM evaluation_summary "
                                      "ORDER BY level").fetchall()
    assert rows == [("clip", 8), ("video", None)]
