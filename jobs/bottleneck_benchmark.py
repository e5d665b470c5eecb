"""Does the verdict name the bottleneck? One decode-bound and one model-bound run.

    python -m jobs.benchmark bottleneck [--videos N] [--work-dir .cache/bench]

decode-bound: 48 1280x720 H.264 videos of moving noise (expensive to
decode), every frame, through mobilenet_v3_small at 32x32 (almost free), one
decode worker (on 2 cores, two decode processes starve the model actor of
CPU while it imports torch: it loaded after 27 s of a 39 s run, which the
verdict then calls start-up-bound, rightly).
model-bound: 16 160x120 videos (cheap to decode), every second frame,
through resnet18 at 224x224 with a 32 MiB frame buffer. `--videos` sets both
counts. Each run lasts about a minute on 2 cores, so that the steady state
(every model loaded) outweighs start-up. Corpora are cached under
WORK/bottleneck. Each run is one `vidlake label` process (untrained weights:
only speed matters); its verdict and stage totals are read back from the
lake's `runs` row. Prints one JSON object: per scenario the expected and
given verdict, wall seconds, frames/s, and decode and model busy, idle and
blocked seconds.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

SCENARIOS: dict[str, dict[str, Any]] = {
    "decode-bound": {"size": (1280, 720), "frames": 150, "videos": 48,
                     "flags": ["--model", "mobilenet_v3_small", "--size", "32",
                               "--sample", "all", "--decode-workers", "1"]},
    "model-bound": {"size": (160, 120), "frames": 100, "videos": 16,
                    "flags": ["--model", "resnet18", "--size", "224", "--sample", "every:2",
                              "--buffer-mb", "32"]},
}


def _noise_video(path: Path, width: int, height: int, frames: int, seed: int) -> None:
    """Moving noise: no two frames alike, little for the encoder to predict."""
    from pipeline.synthetic.video_writer import write_video

    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (height, width * 2, 3), np.uint8)
    shifted = (base[:, i * 4 % width : i * 4 % width + width] for i in range(frames))
    write_video(path, shifted, fps=25.0, gop=50)


def corpus(work: Path, name: str, videos: int) -> Path:
    """The scenario's corpus (cached: made once)."""
    spec = SCENARIOS[name]
    folder = work / "bottleneck" / name
    folder.mkdir(parents=True, exist_ok=True)
    width, height = spec["size"]
    for i in range(videos):
        path = folder / f"v{i:03d}.mp4"
        if not path.exists():
            _noise_video(path, width, height, spec["frames"], seed=i)
    return folder


def run_scenario(work: Path, name: str, videos: int) -> dict[str, Any]:
    from pipeline.query.duckdb_views import connect

    source = corpus(work, name, videos)
    lake = work / "bottleneck" / f"lake-{name}"
    shutil.rmtree(lake, ignore_errors=True)
    cmd = [sys.executable, "-m", "jobs.label", str(source), "--output", str(lake),
           *SCENARIOS[name]["flags"]]
    t0 = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    wall = time.monotonic() - t0
    run = connect(str(lake)).sql("select * from runs").to_arrow_table().to_pylist()[0]
    stages = {(s["stage"], s["analysis"]): s for s in run["stages"]}
    decode = stages[("decode", None)]
    (model,) = [s for (stage, _), s in stages.items() if stage == "analysis"]
    return {"expected": name, "verdict": run["bottleneck"],
            "named": run["bottleneck"].startswith(name), "wall_s": round(wall, 1),
            "frames": run["counts"]["frames"],
            "frames_per_s": round(run["frames_per_s"], 1),
            "decode_busy_s": round(decode["busy_s"], 1),
            "decode_blocked_s": round(decode["blocked_s"] or 0.0, 1),
            "model_busy_s": round(model["busy_s"], 1),
            "model_idle_s": round(model["idle_s"] or 0.0, 1)}


def bottleneck_benchmark(work: Path, videos: int = 0) -> dict[str, dict[str, Any]]:
    """Both scenarios; `videos` (0: each scenario's own count) per corpus."""
    results = {}
    for name, spec in SCENARIOS.items():
        count = videos or spec["videos"]
        print(f"{name}: {count} videos ...", flush=True)
        results[name] = run_scenario(work, name, count)
        print(f"{name}: {results[name]['verdict']}", flush=True)
    return results
