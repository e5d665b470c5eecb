"""Headers are hints: a container that lies about its frame count or picture
size costs no memory, gets its real count or an error row, and never affects
the other videos of the run."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.corpus.listing import list_corpus
from pipeline.plan.probe import probe_video
from tests.hostile.hostile_media import (
    HUGE_SIDE,
    REAL_FRAMES,
    write_huge_mjpeg_avi,
    write_lying_avi,
)
from tests.lakes import by_name, rows
from tests.media import GOOD
from tests.procs import REPO_ROOT, cap_memory

CLAIMED = 2**31 - 1


# `vidlake` that reports its own peak memory at exit. VmHWM belongs to the
# process's address space, which exec replaces; rusage's maxrss would carry
# over the size of the pytest process that forked it.
_PEAK_REPORTING_VIDLAKE = """
import atexit, sys
def _peak():
    with open("/proc/self/status") as status:
        kib = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    print(f"peak-kib {kib}", file=sys.stderr)
atexit.register(_peak)
from jobs.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _run(source: Path, lake: Path, *flags: str) -> tuple[int, str, int]:
    """`vidlake label --engine sequential` as a child: (exit code, stderr, peak RSS in MiB)."""
    done = subprocess.run([sys.executable, "-c", _PEAK_REPORTING_VIDLAKE, "label", str(source),
                           "--output", str(lake), "--engine", "sequential", *flags],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=240,
                          preexec_fn=cap_memory)
    *lines, last = done.stderr.rstrip().splitlines()
    assert last.startswith("peak-kib "), done.stderr
    return done.returncode, "\n".join(lines), int(last.split()[1]) // 1024


@pytest.fixture
def lying_corpus(corpus) -> Path:
    folder = corpus("h264.mp4", name="lying")
    write_lying_avi(folder / "lying.avi", CLAIMED)
    return folder


def test_probe_counts_the_frames_a_header_over_claims(tmp_path: Path):
    (ref,) = list_corpus(str(write_lying_avi(tmp_path / "lying.avi", CLAIMED)))
    info = probe_video(ref)
    assert (info.error, info.n_frames, info.duration_s) == (None, REAL_FRAMES, 0.4)


@pytest.mark.parametrize("flags", [
    ["--analysis", "shots"],
    ["--sample", "all", "--size", "32", "--model", "mobilenet_v3_small"],
    ["--sample", "every:1000", "--size", "32", "--model", "mobilenet_v3_small"],
], ids=["shots", "all", "every-1000"])
def test_a_lying_frame_count_costs_nothing_and_hides_no_video(lying_corpus: Path,
                                                              tmp_path: Path, flags: list[str]):
    lake = tmp_path / "lake"
    code, err, peak_mib = _run(lying_corpus, lake, *flags)
    assert code == 0, err
    assert peak_mib < 2048  # planning 2**31 frame indices took 16 GiB
    videos = by_name(rows(str(lake), "select * from videos"))
    assert set(videos) == {"lying.avi", "h264.mp4"}
    assert videos["lying.avi"]["status"] == "ok", videos["lying.avi"]["error"]
    assert videos["lying.avi"]["n_frames"] == REAL_FRAMES
    assert videos["h264.mp4"]["status"] == "ok"
    (run,) = rows(str(lake), "select counts from runs")
    assert run["counts"]["units_failed"] == 0


def test_planning_a_claimed_two_billion_frames_is_lazy():
    """Units come one at a time: the first few of a video that claims 2**31-1
    frames cost milliseconds and kilobytes, for every sampling. Checked in a
    child capped at 2 GiB of address space, so a planner that allocates per
    claimed frame fails this test instead of the machine."""
    child = subprocess.run([sys.executable, "-c", LAZY_PLANNING], cwd=REPO_ROOT,
                           capture_output=True, text=True, timeout=120,
                           preexec_fn=lambda: cap_memory(2 << 30))
    assert child.returncode == 0, child.stderr[-2000:]
    assert child.stdout.split() == ["all:3", "every:1000:3", "fps:1:3", "uniform:8:1"]


LAZY_PLANNING = f"""
import itertools, time, tracemalloc
from pipeline.config import AnalysisSpec, FrameSize, SampleSpec
from pipeline.corpus.video_ref import VideoRef
from pipeline.plan.planner import plan_video
from pipeline.plan.video_info import VideoInfo

claimed = {CLAIMED}
info = VideoInfo(VideoRef("/nowhere/claims.avi", 10**12, "e"), codec="mpeg4", width=64,
                 height=64, fps=25.0, n_frames=claimed, duration_s=claimed / 25)
for sample in ("all", "every:1000", "fps:1", "uniform:8"):
    spec = AnalysisSpec("frame_labels", sample=SampleSpec.parse(sample), size=FrameSize(32, 32))
    tracemalloc.start()
    started = time.monotonic()
    units = list(itertools.islice(plan_video(info, {{"frame_labels": spec}}, 128, "k"), 3))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    if time.monotonic() - started > 5 or peak > 64 << 20:
        raise SystemExit(f"{{sample}}: {{time.monotonic() - started:.1f}} s, {{peak}} bytes")
    if not all(0 < u.n_frames <= 128 for u in units):
        raise SystemExit(f"{{sample}}: units of {{[u.n_frames for u in units]}} frames")
    print(f"{{sample}}:{{len(units)}}")
expected = tuple(int((i + 0.5) * claimed / 8) for i in range(8))
if units[0].frame_indices != expected:
    raise SystemExit(f"uniform:8 gave {{units[0].frame_indices}}")
"""


def test_a_plausible_but_false_count_stops_at_the_real_end(corpus, tmp_path: Path):
    """A header claiming 100 frames for 10 real ones (believable for its size):
    planning stops at the end the decoder found, instead of failing 45 more units."""
    folder = corpus("h264.mp4", name="short")
    write_lying_avi(folder / "short.avi", 100)
    lake = tmp_path / "lake"
    code, err, _ = _run(folder, lake, "--analysis", "shots", "--max-frames-per-unit", "2")
    assert code == 0, err
    videos = by_name(rows(str(lake), "select * from videos"))
    assert videos["short.avi"]["n_frames"] == REAL_FRAMES
    assert "truncated" in videos["short.avi"]["error"]
    assert videos["h264.mp4"]["status"] == "ok"
    (run,) = rows(str(lake), "select counts from runs")
    good_units = -(-GOOD["h264.mp4"].n_frames // 2)
    # 5 units hold the 10 real frames; one batch of 8 was in flight when the end was found
    assert run["counts"]["units"] <= good_units + 5 + 8 < good_units + 50


def test_huge_pictures_are_an_error_row_before_any_decode(corpus, tmp_path: Path):
    folder = corpus("h264.mp4", name="huge")
    write_huge_mjpeg_avi(folder / "huge.avi")
    lake = tmp_path / "lake"
    started = time.monotonic()
    code, err, peak_mib = _run(folder, lake, "--analysis", "shots")
    assert code == 0, err
    assert time.monotonic() - started < 60 and peak_mib < 1024  # ~1 GB per decoded frame
    videos = by_name(rows(str(lake), "select * from videos"))
    assert videos["huge.avi"]["status"] == "error"
    assert f"{HUGE_SIDE}x{HUGE_SIDE}" in videos["huge.avi"]["error"]
    assert "--max-frame-pixels" in videos["huge.avi"]["error"]
    assert videos["h264.mp4"]["status"] == "ok"


def test_the_pixel_limit_is_the_users_to_set(corpus, tmp_path: Path):
    lake = tmp_path / "lake"
    code, err, _ = _run(corpus("h264.mp4", "wide.mp4"), lake, "--analysis", "shots",
                        "--max-frame-pixels", "64x56")
    assert code == 0, err
    videos = by_name(rows(str(lake), "select * from videos"))
    assert videos["h264.mp4"]["status"] == "error"  # 64x64 > 64x56
    assert videos["wide.mp4"]["status"] == "ok"  # 64x48
