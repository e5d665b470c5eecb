"""The demo: learn motion with Ray Train, label held-out videos, evaluate.

Usage:
    python -m jobs.demo [--work-dir demo-data] [--epochs N]

Everything runs on the embedded default (local Ray, local folders), no
server. The corpus has four classes that differ only in motion: a shape
drifting left, right, up or down over a random background, with random
colours, sizes and positions (pipeline/synthetic/motion.py). A single frame
says nothing about the class. The demo

1. writes a training corpus (a folder per class, plus bad files that
   training must skip) and a held-out corpus (plus bad files);
2. trains a CNN+GRU with `vidlake train SOURCE --output DIR --model cnn_gru`
   and nothing else (Ray Train, CPU), then a frame CNN on 2 DDP workers;
3. labels the held-out videos with each exported model.pt through
   `vidlake label --weights` and nothing else;
4. scores both with `vidlake evaluate` against the held-out truth;
5. asks `vidlake relabel --dry-run` what a nightly run would do now (retry
   the bad files, nothing else) and shows `video_status`;
6. writes `vidlake report` of the CNN+GRU's labelling run, with its training
   curves and confusion matrix: WORK_DIR/report.html, one file that opens
   from disk.

The CNN+GRU should reach >= 90 % held-out top-1; the frame CNN, blind to
order, stays near chance (25 %): that is why temporal models matter.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
from pathlib import Path

from jobs.logging_setup import configure
from pipeline.cli.parser import OneLineParser

# The CNN+GRU trains with `vidlake train`'s defaults alone: the flags a user
# must give and nothing else (docs/design.md#training: what they are, why).
# The frame CNN, the control, gets 2 DDP workers and the demo's 64 px frames;
# flips are off by default, so no --hflip-swap is needed.
MODELS = {
    "cnn_gru": ["--model", "cnn_gru"],
    "frame_cnn": ["--model", "mobilenet_v3_small", "--size", "64", "--num-workers", "2"],
}
QUERIES = {
    "Training curves (vidlake query DIR/cnn_gru)": (
        "cnn_gru", "SELECT epoch, round(train_loss, 3) AS train_loss, round(val_acc, 3) AS "
        "val_top1, round(clips_per_s, 1) AS clips_per_s FROM training_metrics ORDER BY epoch"),
    "Held-out videos: status and reason": (
        "lake_cnn_gru", "SELECT regexp_extract(uri, '[^/]+/[^/]+$') AS video, status, "
        "left(coalesce(error, ''), 60) AS error FROM videos WHERE status <> 'ok' "
        "ORDER BY video"),
    "What each video's status is (vidlake query LAKE, view video_status)": (
        "lake_cnn_gru", "SELECT status, analysis, count(*) AS videos, "
        "left(any_value(error), 50) AS example_error FROM video_status GROUP BY ALL "
        "ORDER BY status"),
    "Where the labelling run's time went (run_stages summed; frames_out = the run's frames)": (
        "lake_cnn_gru", "SELECT stage, coalesce(analysis, '') AS analysis, "
        "sum(items_out) AS items_out, sum(frames_out) AS frames_out, "
        "round(sum(busy_s), 2) AS busy_s, count(*) AS intervals, "
        "any_value((SELECT counts.frames FROM runs)) AS run_frames FROM run_stages "
        "GROUP BY stage, analysis "
        "ORDER BY list_position(['list', 'probe', 'fetch', 'decode', 'analysis', 'commit'], "
        "stage)"),
    "CNN+GRU clip labels (first 8)": (
        "lake_cnn_gru", "SELECT regexp_extract(uri, '[^/]+$') AS video, label, "
        "round(score, 3) AS score FROM clip_labels ORDER BY video LIMIT 8"),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = OneLineParser(prog="python -m jobs.demo", description=__doc__,
                           formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--work-dir", default="demo-data", help="where everything is written")
    parser.add_argument("--epochs", type=int, help="training epochs (default: train's own)")
    parser.add_argument("--per-class", type=int, default=100, help="training videos per class")
    return parser.parse_args(argv)


def write_corpora(work: Path, per_class: int) -> Path:
    """Training and held-out corpora with bad files; returns the truth manifest."""
    from pipeline.synthetic.corpus_builder import write_bad_files, write_motion_corpus

    shutil.rmtree(work, ignore_errors=True)
    train = write_motion_corpus(work / "train", per_class=per_class, seed=1)
    held_out = write_motion_corpus(work / "held_out", per_class=max(5, per_class // 5), seed=2)
    # Bad files inside a class folder: training must skip and count them.
    bad = write_bad_files(work / "train" / "left", Path(next(iter(train))))
    write_bad_files(work / "held_out" / "bad", Path(next(iter(held_out))))
    truth = work / "held_out_truth.csv"
    with truth.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["uri", "label"])
        writer.writerows(sorted(held_out.items()))
    print(f"wrote {len(train)} training videos (+{len(bad)} bad) and {len(held_out)} "
          f"held-out videos (+4 bad) in {work}", flush=True)
    return truth


def _run(command: str, argv: list[str]) -> None:
    from jobs import evaluate, label, relabel, report, train

    module = {"train": train, "label": label, "evaluate": evaluate, "relabel": relabel,
              "report": report}[command]
    print(f"\n$ vidlake {command} {' '.join(argv)}", flush=True)
    code = module.main(argv)
    if code != 0:
        raise SystemExit(f"vidlake {command} failed with exit code {code}")


def held_out_accuracy(lake: Path) -> float:
    import duckdb

    pattern = str(lake / "evaluation_summary" / "*.parquet")
    rows = duckdb.connect().execute("SELECT accuracy FROM read_parquet(?) WHERE level = 'video'",
                                    [pattern]).fetchall()
    return float(rows[0][0])


def run(args: argparse.Namespace) -> int:
    from jobs import query

    configure()
    work = Path(args.work_dir).resolve()
    truth = write_corpora(work, args.per_class)
    accuracy = {}
    for name, flags in MODELS.items():
        out, lake = work / name, work / f"lake_{name}"
        epochs = ["--epochs", str(args.epochs)] if args.epochs else []
        _run("train", [str(work / "train"), "--output", str(out), *flags, *epochs])
        _run("label", [str(work / "held_out"), "--output", str(lake), "--weights",
                       str(out / "model.pt")])
        _run("evaluate", [str(lake), "--truth", str(truth)])
        accuracy[name] = held_out_accuracy(lake)
    _run("relabel", [str(work / "held_out"), "--output", str(work / "lake_cnn_gru"),
                     "--weights", str(work / "cnn_gru" / "model.pt"), "--dry-run"])
    for title, (folder, sql) in QUERIES.items():
        print(f"\n== {title}\n$ vidlake query {work / folder} \"{sql}\"")
        query.main([str(work / folder), sql])
    print("\nheld-out top-1 (4 classes, chance 0.25):")
    for name, value in accuracy.items():
        print(f"  {name:<10} {value:.3f}")
    _run("report", [str(work / "lake_cnn_gru"), "--output", str(work / "report.html"),
                    "--training-dir", str(work / "cnn_gru")])
    print(f"\nthe run's report: {work / 'report.html'} (open it in a browser)")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
