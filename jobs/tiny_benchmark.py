"""Many tiny videos: the per-video fixed cost, vidlake against a plain loop.

Usage:
    python -m jobs.benchmark tiny [--videos 5000] [--work-dir .cache/bench]

A corpus of short clips is all fixed cost: listing, probing, opening,
fetching and committing each video costs more than decoding its one frame.
The corpus is `--videos` one-second 320x240 H.264 clips at 25 fps (cached
under WORK/tiny). Each contender runs in a fresh process, timed from start
to exit (interpreter, imports, Ray start-up and shutdown included):

- the plain loop: for each file, open it with decord (112x112, one thread),
  read its middle frame, classify it with mobilenet_v3_small (untrained,
  the same weights file), next file;
- `vidlake label --sample uniform:1 --size 112` with the same model and
  weights into a fresh lake, whose frame_labels rows are counted (one per
  clip, checked).

The last line is JSON: videos, loop_s, vidlake_s, ratio (loop_s / vidlake_s:
above 1 when vidlake is faster), and each contender's videos/s.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

MODEL = "mobilenet_v3_small"
SIZE = 112
SECONDS = 1.0


def corpus(work: Path, count: int) -> Path:
    """The cached clips and the weights file (made on first use)."""
    from jobs.benchmark import prepare_weights
    from pipeline.synthetic.corpus_builder import write_benchmark_corpus

    root = work / "tiny"
    print(f"preparing {count} one-second clips in {root} (cached)...", flush=True)
    write_benchmark_corpus(root, count=count, seconds=SECONDS)
    for extra in sorted(root.glob("clip_*.mp4"))[count:]:
        extra.unlink()  # a larger earlier run's clips: not this corpus
    prepare_weights(work)
    return root


def plain_loop(root: Path, weights: Path) -> int:
    """Classify the middle frame of every clip, one file after another."""
    import decord
    import torch

    from jobs.benchmark import load_model

    model = load_model(weights)
    frames = 0
    with torch.inference_mode():
        for path in sorted(root.glob("clip_*.mp4")):
            reader = decord.VideoReader(str(path), width=SIZE, height=SIZE, num_threads=1)
            batch = reader.get_batch([len(reader) // 2]).asnumpy()
            x = torch.from_numpy(batch).permute(0, 3, 1, 2).float().div(255)
            model(x).softmax(1).topk(5)
            frames += len(batch)
    return frames


def _timed(cmd: list[str]) -> tuple[float, str]:
    t0 = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return time.monotonic() - t0, done.stdout


def tiny_benchmark(work: Path, count: int) -> dict[str, Any]:
    work = work.resolve()
    root = corpus(work, count)
    loop_s, out = _timed([sys.executable, "-m", "jobs.tiny_benchmark", str(root),
                          str(work / "weights.pt")])
    assert int(out.split()[-1]) == count, out
    print(f"plain loop: {count} clips in {loop_s:.1f}s ({count / loop_s:.1f} videos/s)",
          flush=True)
    lake = work / "lake-tiny"
    shutil.rmtree(lake, ignore_errors=True)
    vidlake_s, _ = _timed([sys.executable, "-m", "jobs.label", str(root), "--output", str(lake),
                           "--model", MODEL, "--weights", str(work / "weights.pt"),
                           "--sample", "uniform:1", "--size", str(SIZE)])
    from pipeline.query.duckdb_views import connect

    ((labelled,),) = connect(str(lake)).sql("SELECT count(*) FROM frame_labels").fetchall()
    assert labelled == count, f"{labelled} frame_labels rows for {count} clips"
    print(f"vidlake label: {count} clips in {vidlake_s:.1f}s ({count / vidlake_s:.1f} "
          f"videos/s)", flush=True)
    return {"videos": count, "loop_s": round(loop_s, 1), "vidlake_s": round(vidlake_s, 1),
            "ratio": round(loop_s / vidlake_s, 3),
            "loop_videos_per_s": round(count / loop_s, 1),
            "vidlake_videos_per_s": round(count / vidlake_s, 1)}


if __name__ == "__main__":  # the plain loop's own process
    print(plain_loop(Path(sys.argv[1]), Path(sys.argv[2])))
