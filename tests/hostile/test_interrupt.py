"""Ctrl-C: one line, exit 130, and a `runs` row that counts only what the run
committed; the same command then finishes the work, every row once."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.lakes import rows, table_counts
from tests.procs import REPO_ROOT, VENV_BIN

COPIES = 40  # 1000 units: the run is still busy well after its first commit (256 units)


@pytest.fixture
def many_videos(media: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "many"
    folder.mkdir()
    for index in range(COPIES):
        shutil.copyfile(media / "h264.mp4", folder / f"clip-{index:03d}.mp4")
    return folder


def _commits(lake: Path) -> list[dict]:
    folder = lake / "_commits"
    if not folder.is_dir():
        return []
    return [json.loads(p.read_bytes()) for p in sorted(folder.glob("*.json"))]


def _interrupt_after_first_commit(argv: list[str], lake: Path) -> tuple[int, str]:
    """Start `vidlake ARGV` in its own process group, press Ctrl-C (SIGINT to the
    group, as a terminal does) once its first commit is in the log."""
    proc = subprocess.Popen([str(VENV_BIN / "vidlake"), *argv], cwd=REPO_ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.monotonic() + 180
    while not _commits(lake) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # polling the log for the event, not papering over a race
    assert proc.poll() is None, "the run ended before its first commit was seen"
    os.killpg(proc.pid, signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return proc.returncode, err


@pytest.mark.parametrize("engine", [
    "sequential", pytest.param("ray", marks=[pytest.mark.slow, pytest.mark.ray])])
def test_ctrl_c_counts_what_was_committed_and_the_rerun_finishes(many_videos: Path,
                                                                tmp_path: Path, engine: str):
    lake = tmp_path / "lake"
    argv = ["label", str(many_videos), "--output", str(lake), "--engine", engine,
            "--analysis", "shots", "--max-frames-per-unit", "2"]
    code, err = _interrupt_after_first_commit(argv, lake)
    assert code == 130, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("vidlake label: interrupted: run ") and "Traceback" not in err
    assert "run the same command to continue" in last
    work = [c for c in _commits(lake) if c["units"]]
    units = sum(len(c["units"]) for c in work)
    frames = sum(o["frames"] for c in work for o in c["units"].values())
    (run,) = rows(str(lake), "select status, counts from runs")
    assert run["status"] == "interrupted"
    assert (run["counts"]["units"], run["counts"]["frames"]) == (units, frames)
    assert f"{units} units" in last
    # the first commit may hold units of videos none of which is finished yet:
    # then `videos` has no file (0 rows)
    videos = table_counts(str(lake))["videos"]
    assert run["counts"]["videos_ok"] + run["counts"]["videos_failed"] == videos < COPIES

    # the engine is not part of what the rows are: the quick one finishes the work
    rerun = [*argv[:argv.index("--engine") + 1], "sequential", *argv[argv.index(engine) + 1:]]
    finished = subprocess.run([str(VENV_BIN / "vidlake"), *rerun], cwd=REPO_ROOT,
                              capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr
    per_video = rows(str(lake), "select uri, count(*) as n from videos group by uri")
    assert len(per_video) == COPIES and {r["n"] for r in per_video} == {1}
    shots = rows(str(lake), "select uri, shot_index, count(*) as n from shots group by all")
    assert {r["n"] for r in shots} == {1} and len({r["uri"] for r in shots}) == COPIES
