"""Shot detection quality and cost, every method scored the same way in one run.

    python -m jobs.benchmark shots [--videos 12] [--work-dir .cache/bench]

Corpus (cached under WORK/shots, with its truth in truth.json): H.264 edits
at 320x180, 25 fps, each of 10 shots of 20-60 frames joined by hard cuts,
dissolves (8-30 frames) and fades through black (8-30 frames); some shots are
fast pans, some hold 1-3 flash frames (neither is a transition).

Methods (METHODS: name -> callable(list of video paths) -> predictions per
path): `vidlake label --engine sequential --analysis shots:method=...` over
the whole corpus in one run (probe, plan, decode, score, lake write), and
PySceneDetect's `detect()` per video (PyAV backend), its defaults. A
prediction is a transition span (first, last frame); a method that reports
shots gives (f, f) for the first frame of each new shot (transnetv2 too: its
rows say where a shot starts, after the transition's peak).

Scoring (one protocol for all): true transitions are hard cuts (c, c), c the
new shot's first frame, and gradual spans (a, b) of mixed frames. A
prediction (s, e) matches a true transition (a, b) when they overlap with
one frame of tolerance (s <= b + 1 and e >= a - 1): a cut within +-1 frame, a
gradual transition by overlap. Each truth and each prediction matches at most
once (predictions in order, the earliest unmatched truth they overlap).
Recall per class: matched / true. Precision per class: matched / (matched +
unmatched predictions of that form: a single frame counts as a cut, a longer
span as gradual). F1 from those; `all`: both classes together. Frames/s:
corpus frames / wall seconds of the method over the corpus.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pipeline.synthetic.shot_edits import Shot, edit_frames
from pipeline.synthetic.video_writer import write_video

Span = tuple[int, int]
Method = Callable[[list[Path]], dict[str, list[Span]]]
WIDTH, HEIGHT, FPS, SHOTS_PER_VIDEO = 320, 180, 25, 10


def _plan(rng: np.random.Generator) -> list[Shot]:
    """One edit: random shot lengths, contents and transitions."""
    shots = []
    for _ in range(SHOTS_PER_VIDEO):
        into = str(rng.choice(["cut", "cut", "dissolve", "fade"]))
        pan = rng.random() < 0.2
        flashes = ((int(rng.integers(5, 15)), int(rng.integers(1, 4))),) \
            if rng.random() < 0.25 else ()
        shots.append(Shot(int(rng.integers(20, 61)), content="pan" if pan else "scene",
                          into=into, transition=0 if into == "cut" else int(rng.integers(8, 31)),
                          speed=int(rng.integers(WIDTH // 16, WIDTH // 8)), flashes=flashes))
    return shots


def prepare(work: Path, count: int) -> tuple[list[Path], dict[str, dict]]:
    """The cached corpus and its truth {path: {cuts, gradual, n_frames}}."""
    root = work / "shots"
    root.mkdir(parents=True, exist_ok=True)
    truth_file = root / "truth.json"
    truth = json.loads(truth_file.read_text()) if truth_file.exists() else {}
    paths = []
    for i in range(count):
        path = root / f"edit_{i:03d}.mp4"
        frames, known = edit_frames(_plan(np.random.default_rng(1000 + i)), height=HEIGHT,
                                    width=WIDTH, seed=i)
        if not path.exists() or str(path) not in truth:
            tmp = path.with_suffix(".tmp.mp4")
            write_video(tmp, frames, fps=FPS)
            tmp.rename(path)
            truth[str(path)] = {"cuts": known.cuts, "gradual": known.gradual,
                                "n_frames": known.n_frames}
        paths.append(path)
    truth_file.write_text(json.dumps(truth))
    return paths, truth


def vidlake(method: str) -> Method:
    def run(paths: list[Path]) -> dict[str, list[Span]]:
        from jobs import label
        from pipeline.query.duckdb_views import connect

        with tempfile.TemporaryDirectory() as lake:
            code = label.main([str(paths[0].parent), "--output", lake, "--engine", "sequential",
                               "--analysis", f"shots:method={method}"])
            if code != 0:
                raise RuntimeError(f"vidlake label exited {code}")
            found: dict[str, list[Span]] = {str(p): [] for p in paths}
            rows = connect(lake).execute(
                "select uri, start_frame from shots where shot_index > 0").fetchall()
        for uri, start in rows:
            found[next(k for k in found if uri.endswith(Path(k).name))].append((start, start))
        return found

    return run


def pyscenedetect(method: str) -> Method:
    def run(paths: list[Path]) -> dict[str, list[Span]]:
        from scenedetect import AdaptiveDetector, ContentDetector, detect

        found = {}
        for path in paths:
            detector = ContentDetector() if method == "content" else AdaptiveDetector()
            scenes = detect(str(path), detector, backend="pyav")
            found[str(path)] = [(int(s.frame_num), int(s.frame_num)) for s, _ in scenes[1:]]
        return found

    return run


METHODS: dict[str, Method] = {
    "vidlake content": vidlake("content"),
    "vidlake adaptive": vidlake("adaptive"),
    "vidlake transnetv2": vidlake("transnetv2"),
    "PySceneDetect content": pyscenedetect("content"),
    "PySceneDetect adaptive": pyscenedetect("adaptive"),
}


def match(predicted: list[Span], true: list[Span]) -> list[tuple[Span, Span | None]]:
    """Each prediction with the true transition it matches (None: a false one)."""
    free = sorted(true)
    pairs: list[tuple[Span, Span | None]] = []
    for span in sorted(predicted):
        hit = next((t for t in free if span[0] <= t[1] + 1 and span[1] >= t[0] - 1), None)
        if hit is not None:
            free.remove(hit)
        pairs.append((span, hit))
    return pairs


def _prf(hits: int, false: int, true: int) -> dict[str, float]:
    precision = hits / (hits + false) if hits + false else 1.0
    recall = hits / true if true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 3), "recall": round(recall, 3), "f1": round(f1, 3)}


def score(predictions: dict[str, list[Span]], truth: dict[str, dict]) -> dict[str, dict]:
    """P/R/F1 for hard cuts, gradual transitions and all (module docstring)."""
    hits = {"hard": 0, "gradual": 0}
    false = {"hard": 0, "gradual": 0}
    true = {"hard": 0, "gradual": 0}
    for path, known in truth.items():
        cuts = [(c, c) for c in known["cuts"]]
        gradual = [tuple(g) for g in known["gradual"]]
        true["hard"] += len(cuts)
        true["gradual"] += len(gradual)
        for span, hit in match(predictions.get(path, []), cuts + gradual):
            if hit is None:
                false["hard" if span[0] == span[1] else "gradual"] += 1
            else:
                hits["hard" if hit in cuts else "gradual"] += 1
    out = {k: _prf(hits[k], false[k], true[k]) for k in hits}
    out["all"] = _prf(sum(hits.values()), sum(false.values()), sum(true.values()))
    return out


def shot_benchmark(work: Path, count: int) -> dict[str, dict]:
    """Every METHODS entry on the corpus: scores and frames/s; prints a table."""
    paths, all_truth = prepare(work, count)
    truth = {str(p): all_truth[str(p)] for p in paths}
    frames = sum(t["n_frames"] for t in truth.values())
    results = {}
    for name, method in METHODS.items():
        start = time.perf_counter()
        predicted = method(paths)
        seconds = time.perf_counter() - start
        results[name] = {**score(predicted, truth), "frames_per_s": round(frames / seconds, 1),
                         "cuts": {Path(p).name: [s for s, _ in v] for p, v in predicted.items()}}
    print(table(results, len(paths), frames, truth))
    return results


def table(results: dict[str, dict], videos: int, frames: int, truth: dict[str, dict]) -> str:
    hard = sum(len(t["cuts"]) for t in truth.values())
    gradual = sum(len(t["gradual"]) for t in truth.values())
    lines = [f"{videos} videos, {frames} frames, {hard} hard cuts, {gradual} gradual", "",
             "| method | hard P | hard R | hard F1 | gradual P | gradual R | gradual F1 "
             "| all F1 | frames/s |", "|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        h, g = r["hard"], r["gradual"]
        lines.append(f"| {name} | {h['precision']} | {h['recall']} | {h['f1']} | "
                     f"{g['precision']} | {g['recall']} | {g['f1']} | {r['all']['f1']} | "
                     f"{r['frames_per_s']} |")
    return "\n".join(lines)
