"""`vidlake evaluate` on a lake written by `vidlake label`: real frame_labels
rows from a model whose labels are known (tests.known_models:frame_index reads
each frame's red value), so every figure is computed by hand."""

from __future__ import annotations

import contextlib
import csv
import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from jobs import evaluate, label
from pipeline.query.duckdb_views import connect
from pipeline.synthetic.video_writer import write_video

LABELS = ["cat", "dog", "bird", "fish"]  # 4 classes: rows hold 4 topk_labels, not 5
# Each video's frames, by label (the red value of the frame is its label's
# index), and its truth: v1's clips disagree with their video (dog 2, cat 4).
VIDEOS = {"v0": (["cat"] * 4 + ["dog"] * 2, "cat"),
          "v1": (["dog"] * 2 + ["cat"] * 4, "dog"),
          "v2": (["dog"] * 3, "dog")}


def _frames(labels: list[str]) -> list[np.ndarray]:
    """32x32 RGB frames whose red channel is each label's index."""
    frames = []
    for name in labels:
        frame = np.zeros((32, 32, 3), np.uint8)
        frame[..., 0] = LABELS.index(name)
        frames.append(frame)
    return frames


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Label the videos (every frame), evaluate; the lake and the printed report."""
    root = tmp_path_factory.mktemp("labelled")
    source = root / "videos"
    source.mkdir()
    for name, (labels, _) in VIDEOS.items():
        write_video(source / f"{name}.mp4", _frames(labels), codec="lossless")
    (root / "labels.txt").write_text("\n".join(LABELS))
    lake = root / "lake"
    assert label.main([
        str(source), "--output", str(lake), "--engine", "sequential", "--analysis",
        f"frame_labels:model=tests.known_models:frame_index,sample=all,size=32,"
        f"labels={root / 'labels.txt'}"]) == 0
    truth = root / "truth.csv"
    with truth.open("w", newline="") as handle:
        csv.writer(handle).writerows([("uri", "label"), *(
            (str(source / f"{name}.mp4"), video_truth)
            for name, (_, video_truth) in VIDEOS.items())])
    printed = io.StringIO()  # capsys is per test; this fixture is per module
    with contextlib.redirect_stdout(printed):
        assert evaluate.main([str(lake), "--truth", str(truth)]) == 0
    return lake, printed.getvalue()


def _per_class(lake: Path, level: str) -> dict[str, tuple[Any, ...]]:
    rows = connect(str(lake)).execute(
        "SELECT label, precision, recall, f1, support FROM evaluation_per_class "
        "WHERE level = ?", [level]).fetchall()
    return {r[0]: tuple(r[1:]) for r in rows}


# Clip level, 15 frames: truth cat -> cat 4, dog 2; truth dog -> cat 4, dog 5.
CLIP = {"cat": (1 / 2, 2 / 3, 4 / 7, 6), "dog": (5 / 7, 5 / 9, 5 / 8, 9),
        "macro avg": (17 / 28, 11 / 18, 67 / 112, 15),
        "weighted avg": (22 / 35, 3 / 5, 169 / 280, 15)}
# Video level: v0 cat (right), v1 cat (its majority; truth dog), v2 dog.
VIDEO = {"cat": (1 / 2, 1.0, 2 / 3, 1), "dog": (1.0, 1 / 2, 2 / 3, 2),
         "macro avg": (3 / 4, 3 / 4, 2 / 3, 3),
         "weighted avg": (5 / 6, 2 / 3, 2 / 3, 3)}


@pytest.mark.parametrize(("level", "expected"), [("clip", CLIP), ("video", VIDEO)])
def test_per_class_tables_by_hand(evaluated, level: str, expected: dict[str, Any]):
    lake, _ = evaluated
    got = _per_class(lake, level)
    assert list(got) == list(expected)
    for name, values in expected.items():
        assert got[name] == pytest.approx(values), name
    macro, weighted = got["macro avg"], got["weighted avg"]
    assert macro[:2] != pytest.approx(weighted[:2])  # imbalanced: the averages differ


def test_clip_and_video_level_differ_when_clips_disagree(evaluated):
    lake, out = evaluated
    assert "accuracy 0.600 (9/15 frames, 0 missing)" in out
    assert "accuracy 0.667 (2/3 videos, 0 missing)" in out
    rows = connect(str(lake)).execute("SELECT level, samples, correct, accuracy "
                                      "FROM evaluation_summary").fetchall()
    assert rows == [("video", 3, 2, pytest.approx(2 / 3)), ("clip", 15, 9, 0.6)]


def test_top5_is_not_available_with_4_labels_per_row(evaluated):
    lake, out = evaluated
    assert connect(str(lake)).execute(
        "SELECT min(len(topk_labels)), max(len(topk_labels)) FROM frame_labels"
    ).fetchall() == [(4, 4)]
    assert out.count("top-5 accuracy n/a (rows hold as few as 4 topk_labels") == 2
    assert connect(str(lake)).execute(
        "SELECT count(*) FROM evaluation_summary WHERE top5_correct IS NULL "
        "AND top5_accuracy IS NULL").fetchall() == [(2,)]
