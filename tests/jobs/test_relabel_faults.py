"""Exactly once under injected faults: each test ends with every (video,
analysis, model_version) in the lake exactly once and nothing missing.

Every run is a real `vidlake relabel` process with its own local Ray. Faults:
SIGKILL of the driver mid-run (then a rerun); SIGKILL of an inference actor
and of a decode worker mid-run; the S3 server stopped mid-run and restarted;
two runs started on one lake at once (the lease lock lets one in).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from pipeline.config import SampleSpec
from pipeline.plan.sampling import sample_indices
from pipeline.storage import filesystem, fs_path, join
from tests.conftest import (
    S3_ACCESS_KEY,
    S3_SECRET_KEY,
    S3Server,
    _wait_until_writable,
    _weed_command,
)
from tests.lakes import rows, table_counts
from tests.media import GOOD
from tests.procs import REPO_ROOT, VENV_BIN, stop_process_group, wait_for_port

pytestmark = [pytest.mark.slow, pytest.mark.ray]  # vidlake runs, each with its Ray

SAMPLE = "every:6"
VIDEO = "lossless.mp4"  # 300 frames: 50 sampled, 7 units of 8 frames each
BUSY = "every:2"  # 150 frames a video: long enough to find workers mid-task
# ...at 224 px, through a small frame buffer, so decoding keeps pace with the
# model instead of finishing while it loads.
BUSY_ARGS = ("--size", "224", "--buffer-mb", "8")
ARGS = ("--size", "64", "--max-frames-per-unit", "8", "--decode-workers", "2")


@dataclass
class Run:
    """A `vidlake relabel` process in its own session (its Ray is its children)."""

    process: subprocess.Popen
    log: Path

    def wait(self, timeout: float = 240) -> int:
        return self.process.wait(timeout)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        stop_process_group(self.process, grace_s=5)


@pytest.fixture
def runs(tmp_path: Path) -> Iterator[Callable[..., Run]]:
    """Factory: start `vidlake relabel ARGS` (env: this process's, plus `env`)."""
    started: list[Run] = []
    temp = tempfile.mkdtemp(prefix="vlfault-", dir="/tmp")  # short: Ray socket paths

    def start(*argv: str, env: dict[str, str] | None = None, sample: str = SAMPLE,
              extra: tuple[str, ...] = ()) -> Run:
        log = tmp_path / f"relabel-{len(started)}.log"
        environ = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
        environ.update(RAY_TMPDIR=temp, **(env or {}))
        with log.open("wb") as out:
            process = subprocess.Popen([str(VENV_BIN / "vidlake"), "relabel", *argv, *ARGS,
                                        "--sample", sample, *extra],
                                       cwd=REPO_ROOT, env=environ, stdout=out,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True)
        run = Run(process, log)
        started.append(run)
        return run

    yield start
    for run in started:
        run.stop()
    shutil.rmtree(temp, ignore_errors=True)


def _corpus(media: Path, folder: Path, n: int) -> Path:
    folder.mkdir(parents=True)
    for i in range(n):
        shutil.copyfile(media / VIDEO, folder / f"v{i:02d}.mp4")
    return folder


def _poll(condition: Callable[[], bool], what: str, deadline_s: float = 180,
          run: Run | None = None) -> None:
    """Wait (bounded) until `condition()`; fail early if `run` exits first."""
    deadline = time.monotonic() + deadline_s
    while not condition():
        if run is not None and run.process.poll() is not None:
            pytest.fail(f"relabel exited ({run.process.returncode}) before {what}:\n"
                        f"{run.output()[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def _commits(lake: str) -> int:
    """Commit records in `lake` (local or S3) right now."""
    fs = filesystem(lake)
    try:
        return sum(p.endswith(".json") for p in fs.ls(join(fs_path(lake), "_commits"),
                                                     refresh=True))
    except FileNotFoundError:
        return 0


def _assert_exactly_once(lake: str, names: list[str], sample: str = SAMPLE) -> None:
    """Every video once in `videos` (ok), its sampled frames once each in
    frame_labels, and every output done in video_status."""
    videos = rows(lake, "select uri, status, error from videos")
    assert sorted(v["uri"].rsplit("/", 1)[-1] for v in videos) == sorted(names), videos
    assert [v for v in videos if v["status"] != "ok"] == []
    spec = GOOD[VIDEO]
    expected = {(name, int(i)) for name in names
                for i in sample_indices(SampleSpec.parse(sample), spec.n_frames, spec.fps)}
    labels = rows(lake, "select uri, frame_index, model_version from frame_labels")
    got = [(r["uri"].rsplit("/", 1)[-1], r["frame_index"]) for r in labels]
    assert len(got) == len(set(got)), "a frame was labelled twice"
    assert set(got) == expected
    assert len({r["model_version"] for r in labels}) == 1
    status = rows(lake, "select status, count(*) as n from video_status group by 1")
    assert status == [{"status": "done", "n": len(names)}]


@pytest.fixture(params=["local", "s3"])
def where(request: pytest.FixtureRequest, media: Path, tmp_path: Path) -> tuple[str, str]:
    """(SOURCE, LAKE) of 16 copies of VIDEO: local folders, or a SeaweedFS bucket."""
    local = _corpus(media, tmp_path / "videos", 16)
    if request.param == "local":
        return str(local), str(tmp_path / "lake")
    bucket = request.getfixturevalue("s3_bucket")
    fs = request.getfixturevalue("s3_server").filesystem()
    fs.put(str(local) + "/", f"{bucket}/videos/", recursive=True)
    return f"s3://{bucket}/videos/", f"s3://{bucket}/lake"


def test_driver_sigkilled_mid_run_then_rerun(where: tuple[str, str], runs):
    source, lake = where
    first = runs(source, "--output", lake, sample=BUSY, extra=BUSY_ARGS)
    # A different moment each time: up to 2 s after the first commit (a commit
    # every 5 s; the whole run takes 15-30 s here).
    extra_s = random.uniform(0, 2)
    _poll(lambda: _commits(lake) >= 1, "the first commit", run=first)
    moment = time.monotonic()
    while time.monotonic() - moment < extra_s and first.process.poll() is None:
        time.sleep(0.05)
    os.kill(first.process.pid, signal.SIGKILL)  # the driver alone, as an OOM kill would
    assert first.wait() == -signal.SIGKILL
    first.stop()  # then its node goes away too (its Ray processes)
    done_before = table_counts(lake)["videos"]
    assert done_before < 16, "the run finished before it was killed"

    # the dead driver's lease is no obstacle
    rerun = runs(source, "--output", lake, sample=BUSY, extra=BUSY_ARGS)
    assert rerun.wait() == 0, rerun.output()[-3000:]
    assert f"{16 - done_before} videos" in rerun.output()
    _assert_exactly_once(lake, [f"v{i:02d}.mp4" for i in range(16)], BUSY)
    (run,) = rows(lake, "select status from runs")  # the killed run left no runs row
    assert run["status"] == "completed"


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _kill_worker(run: Run, title: str) -> bool:
    """SIGKILL one process of `run` whose Ray title starts with `title`."""
    for proc in _descendants(run.process.pid):
        try:
            cmdline = " ".join(proc.cmdline())
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if cmdline.startswith(title):
            proc.kill()
            return True
    return False


def test_inference_actor_and_decode_worker_killed_mid_run(media: Path, tmp_path: Path, runs):
    source, lake = _corpus(media, tmp_path / "videos", 12), tmp_path / "lake"
    run = runs(str(source), "--output", str(lake), sample=BUSY, extra=BUSY_ARGS)
    _poll(lambda: _commits(str(lake)) >= 1, "the first commit", run=run)
    _poll(lambda: _kill_worker(run, "ray::decode_task"), "a busy decode worker", run=run)
    _poll(lambda: _kill_worker(run, "ray::InferenceActor"), "the inference actor", run=run)
    assert run.wait() == 0, run.output()[-3000:]
    assert "restarting inference actor" in run.output()
    _assert_exactly_once(str(lake), [f"v{i:02d}.mp4" for i in range(12)], BUSY)


@pytest.fixture
def restartable_s3(tmp_path: Path) -> Iterator[tuple[S3Server, Callable[[], None],
                                                     Callable[[], None]]]:
    """A SeaweedFS of this test's own (the session's must stay up), with stop()
    and start() on the same ports and data folder."""
    data = tmp_path / "weed"
    data.mkdir()
    command, port = _weed_command(data)
    state: dict[str, subprocess.Popen] = {}

    def start() -> None:
        log = (data / "weed.log").open("ab")
        state["p"] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True)
        wait_for_port(port, state["p"], 60, "weed server")
        _wait_until_writable(S3Server(f"http://127.0.0.1:{port}", state["p"]), 60)

    def stop() -> None:
        stop_process_group(state["p"], grace_s=2)

    start()
    try:
        yield S3Server(f"http://127.0.0.1:{port}", state["p"]), stop, start
    finally:
        stop()


def test_s3_server_stopped_and_restarted_mid_run(media: Path, tmp_path: Path, runs,
                                                 restartable_s3,
                                                 monkeypatch: pytest.MonkeyPatch):
    server, stop, start = restartable_s3
    fs = server.filesystem()
    fs.mkdir("corpus")
    names = [f"v{i:02d}.mp4" for i in range(8)]
    for name in names:
        fs.put_file(str(media / VIDEO), f"corpus/videos/{name}")
    env = {"AWS_ENDPOINT_URL_S3": server.endpoint, "AWS_ACCESS_KEY_ID": S3_ACCESS_KEY,
           "AWS_SECRET_ACCESS_KEY": S3_SECRET_KEY, "AWS_REGION": "us-east-1"}
    source, lake = "s3://corpus/videos/", "s3://corpus/lake"
    run = runs(source, "--output", lake, env=env, sample=BUSY, extra=BUSY_ARGS)

    def committed() -> bool:
        fs.invalidate_cache()
        return fs.exists("corpus/lake/_commits") and bool(fs.ls("corpus/lake/_commits"))

    _poll(committed, "the first commit", run=run)
    stop()
    outage = time.monotonic()
    # The outage itself: the run keeps going against a dead endpoint meanwhile.
    while time.monotonic() - outage < 8 and run.process.poll() is None:
        time.sleep(0.2)
    start()
    code = run.wait(300)
    output = run.output()
    assert "transient storage error" in output  # it did meet the outage
    if code != 0:  # failing cleanly is allowed: exit 1, and a rerun completes
        assert code == 1, output[-3000:]
        rerun = runs(source, "--output", lake, env=env, sample=BUSY, extra=BUSY_ARGS)
        assert rerun.wait(300) == 0, rerun.output()[-3000:]
    for key, value in env.items():  # the checks read the lake through this server
        monkeypatch.setenv(key, value)
    _assert_exactly_once(lake, names, BUSY)


def test_two_runs_at_once_one_holds_the_lake(media: Path, tmp_path: Path, runs):
    source, lake = _corpus(media, tmp_path / "videos", 6), tmp_path / "lake"
    first = runs(str(source), "--output", str(lake))

    def leased() -> bool:
        folder = lake / "_lock"
        return folder.exists() and any(folder.glob("lease-*.json")) \
            and not any(folder.glob("lease-*.released"))

    _poll(leased, "the first run's lease", run=first)
    refused = runs(str(source), "--output", str(lake))
    waiting = runs(str(source), "--output", str(lake), "--lock-wait", "600")
    assert refused.wait() == 3
    assert "is locked by relabel run" in refused.output()
    assert first.wait() == 0, first.output()[-3000:]
    assert waiting.wait() == 0, waiting.output()[-3000:]
    assert " 0 videos " in waiting.output()  # it waited, then found everything done
    _assert_exactly_once(str(lake), [f"v{i:02d}.mp4" for i in range(6)])
    assert len(rows(str(lake), "select run_id from runs")) == 2  # the refused run wrote nothing
