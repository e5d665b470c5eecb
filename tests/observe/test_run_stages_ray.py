"""A run on a real local Ray: its run_stages rows sum to its totals, the runs
row carries them with the cost figures and a verdict, and Ray's metrics
endpoint shows vidlake's series while the run is still going."""

from __future__ import annotations

import re
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import ray

from pipeline.config import ExecutionSpec, FrameSize, LabelConfig, ModelSpec, SampleSpec
from pipeline.observe import stage_meter
from pipeline.runner.label_run import run_label
from pipeline.runner.ray_engine import RayEngine
from tests.fault_injection import WAIT_LIMIT_S
from tests.lakes import rows

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_session")]

SERIES = re.compile(r'^ray_vidlake_stage_(?P<name>\w+)_total\{(?P<tags>[^}]*)\} (?P<value>\S+)$',
                    re.M)
SCRAPE_EVERY_S = 0.2


def scrape() -> dict[tuple[str, str, str, str], float]:
    """(counter, run, stage, analysis) -> value, from the node's metrics endpoint
    (summed over the processes that export it)."""
    port = ray.nodes()[0]["MetricsExportPort"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    series: dict[tuple[str, str, str, str], float] = {}
    for match in SERIES.finditer(text):
        tags = dict(re.findall(r'(\w+)="([^"]*)"', match["tags"]))
        key = (match["name"], tags["run"], tags["stage"], tags["analysis"])
        series[key] = series.get(key, 0.0) + float(match["value"])
    return series


class Watcher(threading.Thread):
    """Scrapes the endpoint until a run it has not seen before shows up, then
    lets the run's WAIT video go on (the run cannot end before that)."""

    def __init__(self, go: Path) -> None:
        super().__init__(daemon=True)
        self.go = go
        self.before = {run for _, run, _, _ in scrape()}
        self.seen: set[str] = set()
        self.finished = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + WAIT_LIMIT_S
        while not self.finished.is_set() and time.monotonic() < deadline:
            self.seen = {run for _, run, _, _ in scrape()} - self.before
            if self.seen:
                break
            time.sleep(SCRAPE_EVERY_S)
        self.go.touch()


def test_stage_rows_sum_to_the_run_and_metrics_are_live(corpus, media: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(stage_meter, "INTERVAL_S", 0.5)
    names = ["h264.mp4", "lossless.mkv", "h264.mkv", "lossless.mp4"]
    source = corpus(*names)
    (source / "WAIT.mp4").write_bytes((media / "h264.mp4").read_bytes())
    lake = tmp_path / "lake"
    config = LabelConfig(
        source=str(source), output=str(lake), model=ModelSpec("mobilenet_v3_small"),
        sample=SampleSpec.parse("uniform:6"), size=FrameSize(64, 64),
        execution=ExecutionSpec(max_frames_per_unit=4, decode_workers=1,
                                decoder_path="tests.fault_injection:wait_for_go_file"))
    watcher = Watcher(source / "WAIT.mp4.go")
    watcher.start()
    summary = run_label(config, RayEngine)
    watcher.finished.set()
    watcher.join()
    assert watcher.seen == {summary.run_id}, "vidlake's series did not show during the run"

    (run,) = rows(str(lake), "select * from runs")
    counts = run["counts"]
    assert counts["videos_ok"] == 5 and counts["frames"] == 30
    sums = {(r["stage"], r["analysis"]): r for r in rows(str(lake), f"""
        select stage, analysis, sum(items_in) items_in, sum(items_out) items_out,
               sum(frames_in) frames_in, sum(frames_out) frames_out, sum(busy_s) busy_s,
               sum(bytes) bytes, count(*) intervals
        from run_stages where run_id = '{summary.run_id}' group by all""")}
    assert sums[("list", None)]["items_out"] == 5
    assert sums[("probe", None)]["items_in"] == sums[("probe", None)]["items_out"] == 5
    assert sums[("decode", None)]["frames_out"] == counts["frames"]
    assert sums[("decode", None)]["items_out"] == counts["units"]
    model = sums[("analysis", "frame_labels")]
    assert model["frames_in"] == model["frames_out"] == counts["frames"]
    assert sums[("commit", None)]["items_out"] == counts["units"]
    assert sums[("commit", None)]["frames_out"] == counts["frames"]
    assert sums[("fetch", None)]["bytes"] == 0  # local files are read in place
    assert all(sums[(s, None)]["busy_s"] > 0 for s in ("list", "probe", "decode", "commit"))
    assert model["busy_s"] > 0
    assert sums[("decode", None)]["intervals"] >= 2  # sampled, not one row per run
    # --decode-workers 1: one decode at a time, so decoding fits in the wall time
    assert sums[("decode", None)]["busy_s"] + sums[("fetch", None)]["busy_s"] <= run["wall_s"]

    totals = {(t["stage"], t["analysis"]): t for t in run["stages"]}
    assert set(totals) == set(sums)
    for key, total in totals.items():
        assert total["frames_out"] == sums[key]["frames_out"]
        assert total["busy_s"] == pytest.approx(sums[key]["busy_s"])

    (video,) = rows(str(lake), "select sum(duration_s) s from videos where status = 'ok'")
    assert run["video_hours"] == pytest.approx(video["s"] / 3600)
    cpus = ray.cluster_resources()["CPU"]
    assert run["cpu_hours"] == pytest.approx(cpus * run["wall_s"] / 3600, rel=0.05)
    assert run["gpu_hours"] == 0 and run["video_hours_per_gpu_hour"] is None
    assert run["bottleneck"] == summary.bottleneck
    verdicts = r"^(decode|model|probe|fetch|commit|start-up)-bound|^balanced"
    assert re.match(verdicts, run["bottleneck"]), run["bottleneck"]

    # the counters add up to the table once the last interval is exported
    deadline = time.monotonic() + 30
    while (frames := scrape().get(("frames", summary.run_id, "decode", ""))) != counts["frames"]:
        assert time.monotonic() < deadline, f"decode frames on the endpoint: {frames}"
        time.sleep(SCRAPE_EVERY_S)
