"""The demo: generate a small corpus, fit a frame CNN on it, label it, query it.

Usage:
    python -m jobs.demo [--work-dir demo-data]

Everything runs on the embedded default (local Ray, local folders), no server.
The corpus has four scene classes (sunset, forest, ocean, snow) plus bad
files; a mobilenet_v3_small is fitted for a few seconds on separate training
videos, saved as a vidlake checkpoint, and `vidlake label` runs with it. The
printed accuracy compares each held-out video's majority label with its class.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np

from jobs.logging_setup import configure

ARCH = "mobilenet_v3_small"
SIZE = 64
QUERIES = {
    "Videos: status, decoder and reason": (
        "SELECT regexp_extract(uri, '[^/]+$') AS video, status, decoder, codec, n_frames, "
        "round(fps, 2) AS fps, left(coalesce(error, ''), 70) AS error FROM videos "
        "ORDER BY status, video"),
    "Label distribution per video (majority label vs. true class)": (
        "SELECT regexp_extract(uri, '[^/]+$') AS video, "
        "regexp_extract(uri, '([a-z]+)_[0-9]+[.]mp4$', 1) AS truth, "
        "mode(label) AS majority_label, count(*) AS frames, round(avg(score), 3) AS mean_score "
        "FROM frame_labels GROUP BY uri ORDER BY video"),
    "Accuracy of held-out videos": (
        "WITH per_video AS (SELECT uri, mode(label) AS predicted, "
        "regexp_extract(uri, '([a-z]+)_[0-9]+[.]mp4$', 1) AS truth FROM frame_labels GROUP BY uri)"
        " SELECT count(*) AS videos, sum((predicted = truth)::INT) AS correct, "
        "round(avg((predicted = truth)::INT), 3) AS accuracy FROM per_video"),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m jobs.demo", description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--work-dir", default="demo-data", help="where everything is written")
    return parser.parse_args(argv)


def _training_frames(paths: dict[str, str], names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Decode every 5th frame of the training videos with vidlake's own decoder."""
    from pipeline.config import FrameSize, SampleSpec
    from pipeline.corpus import list_corpus
    from pipeline.decode.unit_decoder import DecodeSettings, decode_unit
    from pipeline.plan.planner import plan_sampled
    from pipeline.plan.probe import probe_video

    settings = DecodeSettings(size=FrameSize(SIZE, SIZE))
    frames, labels = [], []
    for ref in list_corpus(str(Path(next(iter(paths))).parent)):
        for unit in plan_sampled(probe_video(ref), SampleSpec("every", 5), 256, "train",
                                 FrameSize(SIZE, SIZE)):
            decoded = decode_unit(settings, unit)
            frames.append(decoded.frames)
            labels += [names.index(paths[ref.uri])] * len(decoded.frames)
    return np.concatenate(frames), np.asarray(labels)


def prepare(work: Path) -> Path:
    """Write the corpora and fit the model; returns the checkpoint path."""
    from pipeline.models.checkpoint import save_checkpoint
    from pipeline.models.quick_fit import fit_frame_classifier
    from pipeline.synthetic.corpus_builder import write_bad_files, write_scene_corpus
    from pipeline.synthetic.scenes import SCENE_COLOURS

    shutil.rmtree(work, ignore_errors=True)
    names = sorted(SCENE_COLOURS)
    train = write_scene_corpus(work / "train", per_class=6, seed=1)
    held_out = write_scene_corpus(work / "corpus", per_class=4, seed=2)
    write_bad_files(work / "corpus" / "bad", Path(next(iter(held_out))))
    frames, labels = _training_frames(train, names)
    print(f"fitting {ARCH} on {len(frames)} frames of {len(train)} training videos...",
          flush=True)
    state = fit_frame_classifier(ARCH, frames, labels, num_classes=len(names))
    checkpoint = work / "model.pt"
    save_checkpoint(str(checkpoint), arch=ARCH, state_dict=state, label_names=names)
    return checkpoint


def run(args: argparse.Namespace) -> int:
    from jobs import label, query

    configure()
    work = Path(args.work_dir)
    checkpoint = prepare(work)
    lake = work / "lake"
    code = label.main([str(work / "corpus"), "--output", str(lake), "--weights",
                       str(checkpoint), "--sample", "uniform:8", "--size", str(SIZE),
                       "--embeddings"])
    if code != 0:
        return code
    for title, sql in QUERIES.items():
        print(f"\n== {title}\n$ vidlake query {lake} \"{sql}\"")
        query.main([str(lake), sql])
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
