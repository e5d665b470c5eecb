"""Odd sources: nothing in them, the lake inside them, links that lead nowhere."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.lakes import by_name, rows
from tests.procs import run_cli


def _label(source: Path, lake: Path, *flags: str):
    return run_cli("label", str(source), "--output", str(lake), "--engine", "sequential",
                   "--analysis", "shots", *flags)


def test_a_source_with_no_videos_says_so(tmp_path: Path):
    source = tmp_path / "empty"
    source.mkdir()
    (source / "notes.txt").write_text("no videos here")
    done = _label(source, tmp_path / "lake")
    assert done.returncode == 0, done.stderr
    assert "holds no videos" in done.stderr and str(source) in done.stderr
    assert "0 videos" in done.stdout


@pytest.mark.parametrize("where", ["same", "inside", "inside-through-link"])
def test_a_lake_inside_its_source_is_refused(corpus, tmp_path: Path, where: str):
    source = corpus("h264.mp4")
    lake = {"same": source, "inside": source / "out" / "lake",
            "inside-through-link": tmp_path / "link" / "lake"}[where]
    if where == "inside-through-link":
        (tmp_path / "link").symlink_to(source)
    done = _label(source, lake)
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("vidlake label: error: --output") and "inside SOURCE" in line
    assert not (source / "_commits").exists() and not (source / "out").exists()


def test_a_lake_beside_its_source_is_fine(corpus, tmp_path: Path):
    source = corpus("h264.mp4", name="videos")
    done = _label(source, tmp_path / "videos-lake")  # a sibling sharing a name prefix
    assert done.returncode == 0, done.stderr


def test_broken_and_looping_links_are_error_rows(corpus, tmp_path: Path):
    source = corpus("h264.mp4")
    os.symlink(source / "gone.mp4", source / "broken.mp4")
    os.symlink(source / "loop-b.mp4", source / "loop-a.mp4")
    os.symlink(source / "loop-a.mp4", source / "loop-b.mp4")
    os.symlink(source / "h264.mp4", source / "good-link.mp4")
    lake = tmp_path / "lake"
    done = _label(source, lake)
    assert done.returncode == 0, done.stderr
    videos = by_name(rows(str(lake), "select uri, status, error from videos"))
    assert set(videos) == {"h264.mp4", "broken.mp4", "loop-a.mp4", "loop-b.mp4",
                           "good-link.mp4"}
    assert videos["broken.mp4"]["error"].startswith("broken symbolic link")
    assert videos["loop-a.mp4"]["error"] == videos["loop-b.mp4"]["error"] == \
        "symbolic link loop"
    assert videos["h264.mp4"]["status"] == videos["good-link.mp4"]["status"] == "ok"
