"""Several analyses, one decode: `vidlake label` with three analyses in one run
against the same three in separate runs, over an edited corpus (cuts, so the
shot analysis has work). Each run is a fresh process.

Usage:
    python -m jobs.benchmark multi-analysis [--videos 40] [--work-dir .cache/bench]
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

MULTI_ANALYSES = {
    "frame_labels": "frame_labels:model=mobilenet_v3_small,sample=fps:1",
    "clip_labels": "clip_labels:model=r3d_18,clip_len=8,clips_per_video=1",
    "shots": "shots",
}


def _timed_label(work: Path, lake: str, analyses: list[str]) -> float:
    """Wall time of one `vidlake label` process over the edited corpus."""
    import shutil

    shutil.rmtree(work / lake, ignore_errors=True)
    cmd = [sys.executable, "-m", "jobs.label", str(work / "edited"), "--output",
           str(work / lake)]
    for analysis in analyses:
        cmd += ["--analysis", analysis]
    t0 = time.monotonic()
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return time.monotonic() - t0


def multi_analysis(work: Path, count: int) -> dict[str, float]:
    from pipeline.synthetic.corpus_builder import write_edited_corpus

    print(f"preparing {count} edited videos in {work / 'edited'} (cached)...", flush=True)
    write_edited_corpus(work / "edited", count=count)
    combined = _timed_label(work, "lake-multi", list(MULTI_ANALYSES.values()))
    print(f"combined (one run, one decode): {combined:.1f}s", flush=True)
    parts = {}
    for name, analysis in MULTI_ANALYSES.items():
        parts[name] = _timed_label(work, f"lake-{name}", [analysis])
        print(f"{name} alone: {parts[name]:.1f}s", flush=True)
    separate = sum(parts.values())
    print(f"separate runs: {separate:.1f}s", flush=True)
    return {"combined_s": round(combined, 1), "separate_s": round(separate, 1),
            "ratio": round(combined / separate, 3),
            **{f"{name}_s": round(t, 1) for name, t in parts.items()}}


