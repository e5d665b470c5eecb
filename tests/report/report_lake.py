"""The lake the report tests read: `vidlake label` (shots, frame_labels,
detections) over small real videos, a bad file named with `<script>`, a
video deleted after labelling; `vidlake evaluate` on it; a training_metrics
table from the trainer's writer; and `vidlake report` of it."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from jobs import evaluate, label, report
from pipeline.storage_options import StorageOptions
from pipeline.synthetic.video_writer import write_video
from pipeline.training.metrics_table import write_metrics

LABELS = ["cat", "dog", "<b>bird</b>", "fish"]
EVIL = "<script>alert(1)<.mp4"  # not a video: fails, and its uri must come out escaped
HEIGHT, WIDTH = 48, 64
HISTORY = [{"epoch": e, "train_loss": 2.0 / e, "val_loss": 2.5 / e, "train_acc": 0.2 * e,
            "val_acc": 0.15 * e, "train_clips": 40, "val_clips": 8, "skipped": 0,
            "clips_per_s": 10.0 + e, "train_s": 4.0, "lr": 0.01, "workers": 2}
           for e in (1, 2, 3)]


def _frames(n: int, cut: int) -> Iterator[np.ndarray]:
    """A white 12x16 box moving right over a background whose blue jumps at `cut`
    (a shot cut) and whose red is the frame index (the label model reads it)."""
    for i in range(n):
        frame = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
        frame[..., 0] = i % 256
        frame[..., 2] = 40 if i < cut else 220
        x = 4 + i % 30
        frame[10:26, x:x + 12] = 255
        yield frame


def build_lake(root: Path) -> dict[str, Path]:
    """Label, evaluate and report under `root`: the lake, the report, the
    training output and the folder."""
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
