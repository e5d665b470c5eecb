"""Small real lakes to damage: videos with hard cuts, labelled by the sequential
engine with the shots analysis (no model), in two runs so that a file's loss
concerns some videos and not others."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from jobs import cli
from pipeline.synthetic.video_writer import write_video
from tests.lakes import rows
from tests.procs import run_cli

# Solid colours far apart in OpenCV's HSV, so every change (the next colour,
# cyclically) is a cut PySceneDetect's content detector sees: pure hues 60
# apart score 20, under its threshold of 27.
_COLOURS = [(255, 0, 0), (0, 0, 0), (255, 255, 255), (0, 0, 255), (0, 0, 0), (255, 255, 255)]
SHOT_FRAMES = 20  # frames per shot: above the detector's 15-frame minimum shot length
SHOTS_PER_VIDEO = {"v0.mp4": 2, "v1.mp4": 3, "v2.mp4": 4, "v3.mp4": 2}
FIRST_RUN = ("v0.mp4", "v1.mp4")  # labelled first; the second run adds the others
LABEL_ARGS = ("--engine", "sequential", "--analysis", "shots", "--max-frames-per-unit", "16")


def _frames(seed: int, shots: int) -> Any:
    for shot in range(shots):
        frame = np.zeros((32, 32, 3), np.uint8)
        frame[...] = _COLOURS[(shot + seed) % len(_COLOURS)]
        for _ in range(SHOT_FRAMES):
            yield frame


def write_videos(folder: Path) -> Path:
    """The four test videos (h264, 32x32, 25 fps) in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    for seed, (name, shots) in enumerate(SHOTS_PER_VIDEO.items()):
        write_video(folder / name, _frames(seed, shots), fps=25.0, codec="h264")
    return folder


def label(source: str, lake: Path, command: str = "label") -> None:
    """Label `source` into `lake` in this process (no Ray, no model)."""
    code = cli.main([command, source, "--output", str(lake), *LABEL_ARGS])
    if code != 0:
        raise RuntimeError(f"vidlake {command} exited {code}")


def build_lake(source: Path, lake: Path) -> Path:
    """Two runs: FIRST_RUN from a manifest, then the whole folder (the rest)."""
    manifest = source.parent / "first.csv"
    manifest.write_text("uri\n" + "".join(f"{source / n}\n" for n in FIRST_RUN))
    label(str(manifest), lake)
    label(str(source), lake)
    return lake


def copy_lake(pristine: Path, dest: Path) -> Path:
    shutil.copytree(pristine, dest, ignore=shutil.ignore_patterns("_lock"))
    return dest


def uncheckpoint(lake: Path) -> None:
    """Make the log as vidlake wrote it before checkpoints: every record in
    _commits/ (checkpoints fold them, and compaction checkpoints)."""
    commits = lake / "_commits"
    for record in (commits / "_retired").glob("*.json"):
        record.rename(commits / record.name)
    for folded in commits.glob("checkpoint-*.parquet"):
        folded.unlink()


def record_file(lake: Path, run: int) -> Path:
    """The record of the data commit of run 0 (FIRST_RUN's videos) or run 1."""
    for path in sorted((lake / "_commits").glob("*-00000.json")):
        names = {uri.rsplit("/", 1)[-1] for uri in json.loads(path.read_text())["uris"].values()}
        if (names == set(FIRST_RUN)) == (run == 0):
            return path
    raise LookupError(f"no data commit of run {run} in {lake}")


def data_file(lake: Path, table: str, run: int) -> Path:
    """The file of `table` that run 0 or 1 published with its data commit."""
    return lake / table / f"part-{record_file(lake, run).stem}.parquet"


def truncate(path: Path) -> None:
    """Cut a file in half, as a copy that died part-way leaves it."""
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])


def shot_counts(lake: Path) -> dict[tuple[str, int], int]:
    """(video name, shot_index) -> rows in `shots`."""
    found = rows(str(lake), "select uri, shot_index, count(*) as n from shots group by all")
    return {(r["uri"].rsplit("/", 1)[-1], r["shot_index"]): r["n"] for r in found}


def latest_video_counts(lake: Path) -> dict[str, int]:
    found = rows(str(lake), "select uri, count(*) as n from latest_videos group by all")
    return {r["uri"].rsplit("/", 1)[-1]: r["n"] for r in found}


def vidlake(*args: str) -> tuple[int, str, str]:
    """`vidlake ARGS` in a subprocess: exit code, stdout, stderr."""
    done = run_cli(*args, timeout=120)
    return done.returncode, done.stdout, done.stderr


def error_lines(stderr: str, command: str) -> list[str]:
    """The `vidlake <command>: error:` lines of stderr (log lines left out)."""
    return [line for line in stderr.splitlines()
            if line.startswith(f"vidlake {command}: error:")]
