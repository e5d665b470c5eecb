"""The `decode` scenario of jobs.benchmark: decord 0.6 against decord2 against
PyAV, each in a fresh process running jobs/decode_timer.py over the same files.

decord 0.6 and decord2 both install the `decord` package, so each runs under
the python of a side venv made on first use under .cache/bench-venvs (numpy at
this venv's version and the one decoder; no torch) and reused after. PyAV runs
under this venv's python.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENVS = REPO / ".cache" / "bench-venvs"  # git-ignored
TIMER = Path(__file__).with_name("decode_timer.py")
DECORDS = ("decord==0.6.0", "decord2==3.4.0")
MODES = ("sparse", "full")
REPEATS = 3  # each figure is the best of this many runs: other work on the machine only slows


def side_python(requirement: str) -> Path:
    """The python of a venv holding numpy and `requirement`, made on first use;
    a clear one-line SystemExit when it cannot be made."""
    import numpy as np

    venv = VENVS / requirement.replace("==", "-")
    python = venv / "bin" / "python"
    if (venv / "ready").exists():
        return python
    shutil.rmtree(venv, ignore_errors=True)
    print(f"making {venv} (numpy, {requirement})...", flush=True)
    for cmd in ([sys.executable, "-m", "venv", str(venv)],
                [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                 f"numpy=={np.__version__}", requirement]):
        done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if done.returncode != 0:
            shutil.rmtree(venv, ignore_errors=True)
            raise SystemExit(f"cannot install {requirement} into {venv}: "
                             f"{_error_line(done.stderr)}")
    (venv / "ready").touch()
    return python


def _error_line(stderr: str) -> str:
    """pip's ERROR line (its warnings come first), else the last line it wrote."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR")]
    return (errors or lines or ["no output"])[-1]


def corpora(work: Path, clips: int) -> dict[str, list[Path]]:
    """Generated (cached) test sets: short 320x240 H.264 clips with a keyframe a
    second, and three 10 s 720p H.264 files with one keyframe each (long GOP)."""
    from pipeline.synthetic.corpus_builder import write_benchmark_corpus

    print(f"preparing {clips} clips and 3 long-GOP 720p files under {work} (cached)...",
          flush=True)
    return {
        f"{clips} clips 320x240, 5 s": write_benchmark_corpus(work / "corpus", count=clips),
        "3 files 1280x720, 10 s, GOP 250": write_benchmark_corpus(
            work / "long-gop-720p", count=3, seconds=10.0, width=1280, height=720, gop=250),
    }


def timed(python: Path | str, decoder: str, mode: str, paths: list[Path]) -> dict[str, float]:
    """decode_timer.py's JSON for one decoder and mode, plus frames_per_s."""
    cmd = [str(python), str(TIMER), decoder, mode, *map(str, paths)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{decoder} ({python}) failed: {_error_line(done.stderr)}")
    result: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    result["frames_per_s"] = result["frames"] / result["seconds"]
    return result


def decode_benchmark(work: Path, clips: int) -> dict[str, dict[str, float]]:
    """Frames/s of each decoder on each corpus and mode (the best of REPEATS
    runs), printed as a table with ratios to decord 0.6; returns
    {"<corpus>, <mode>": {decoder: frames/s}}."""
    arms: dict[str, Path | str] = {r.replace("==", " "): side_python(r) for r in DECORDS}
    sets = corpora(work, clips)
    out: dict[str, dict[str, float]] = {}
    for corpus, paths in sets.items():
        for mode in MODES:
            row: dict[str, float] = {}
            for _ in range(REPEATS):  # arms interleaved: a busy moment slows all of them
                for arm, python in {**arms, "pyav": sys.executable}.items():
                    result = timed(python, "pyav" if arm == "pyav" else "decord", mode, paths)
                    name = arm if arm != "pyav" else f"pyav {result['version']}"
                    row[name] = max(row.get(name, 0.0), round(result["frames_per_s"], 1))
            out[f"{corpus}, {mode}"] = row
            print(_table_row(f"{corpus}, {mode}", row, header=len(out) == 1), flush=True)
    return out


def _table_row(name: str, row: dict[str, float], *, header: bool) -> str:
    """A markdown row: frames/s and (ratio to the first decoder); with its header
    first when `header`."""
    base = next(iter(row.values()))
    cells = [f"{fps:.0f} ({fps / base:.2f})" for fps in row.values()]
    line = f"| {name} | " + " | ".join(cells) + " |"
    if not header:
        return line
    head = "| corpus, mode | " + " | ".join(f"{arm} frames/s" for arm in row) + " |"
    return "\n".join([head, "|" + "---|" * (len(row) + 1), line])
