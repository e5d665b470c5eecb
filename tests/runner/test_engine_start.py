"""When a run starts its engine (Ray and the model actors), and what the
labelling path imports.

A run into a lake with no commit starts its engine first: the models load
while the driver lists SOURCE, plans and probes. A run into a lake with
commits starts its engine with the first video to do, so a no-op starts none;
an engine started for a run with nothing to do is closed. Listing streams
into planning and decoding. The order is read from events the run's pieces
record, never from clocks.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jobs import label
from pipeline.analyses.base import Analysis
from pipeline.cli.label_options import label_config_from_args
from pipeline.config import LabelConfig
from pipeline.decode.unit_decoder import DecodeSettings
from pipeline.errors import LakeBusy
from pipeline.lake.lake_lock import LakeLock
from pipeline.runner import label_run
from pipeline.runner.batch_result import BatchResult
from pipeline.runner.sequential import PROBES_PER_BATCH, SequentialEngine
from pipeline.runner.streaming_planner import FIRST_WINDOW

LISTING_WAIT_S = 60.0  # only a broken ordering waits this long, and then it fails


class RecordingEngine(SequentialEngine):
    """The sequential engine, recording what the run asks of it in `events`."""

    def __init__(self, events: list[str], config: LabelConfig, analyses: list[Analysis],
                 settings: DecodeSettings) -> None:
        super().__init__(settings, analyses, config.storage)
        self.events = events
        events.append("engine made")

    def start_analysis(self) -> None:
        self.events.append("models requested")
        super().start_analysis()

    def run(self, *args: Any) -> Iterator[BatchResult]:
        self.events.append("probing")
        return super().run(*args)

    def close(self) -> None:
        self.events.append("closed")


class Recorder:
    """Events from the run's listing (its own thread), planning and engine, in
    the order they happen: `listing`, `listed` (its end), `planned NAME` per
    video to do, `plan ended`."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.events: list[str] = []
        real_list, real_plan = label_run.iter_corpus, label_run.plan_stream

        def listing(*args: Any) -> Iterator[list[Any]]:
            self.events.append("listing")
            yield from real_list(*args)
            self.events.append("listed")

        def planning(*args: Any) -> Iterator[Any]:
            for work in real_plan(*args):
                self.events.append(f"planned {Path(work.ref.uri).name}")
                yield work
            self.events.append("plan ended")

        monkeypatch.setattr(label_run, "iter_corpus", listing)
        monkeypatch.setattr(label_run, "plan_stream", planning)

    def engine(self, *args: Any) -> RecordingEngine:
        return RecordingEngine(self.events, *args)


def _config(source: Path, lake: Path) -> LabelConfig:
    """Shots only: no model, so the sequential engine loads nothing (no torch)."""
    return label_config_from_args(label.parse_args(
        [str(source), "--output", str(lake), "--engine", "sequential", "--analysis", "shots"]))


def test_a_fresh_lake_loads_the_models_while_the_driver_lists_and_probes(
        corpus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    recorder = Recorder(monkeypatch)
    requested = threading.Event()
    listing = label_run.iter_corpus

    def slow_listing(*args: Any) -> Iterator[list[Any]]:
        # the listing ends only once the models are asked for: a run that starts
        # its engine after listing never sets the event and fails here
        if not requested.wait(LISTING_WAIT_S):
            raise AssertionError("the models were not requested while SOURCE was listed")
        return listing(*args)

    def engine(*args: Any) -> RecordingEngine:
        made = recorder.engine(*args)
        real_start = made.start_analysis

        def start() -> None:
            real_start()
            requested.set()

        monkeypatch.setattr(made, "start_analysis", start)
        return made

    monkeypatch.setattr(label_run, "iter_corpus", slow_listing)
    summary = label_run.run_label(_config(corpus("h264.mp4"), tmp_path / "lake"), engine)
    assert summary.status == "completed" and summary.videos == 1
    events = recorder.events
    assert events.index("models requested") < events.index("listed")
    assert events.index("planned h264.mp4") < events.index("probing")
    assert events.count("engine made") == 1 and events[-1] == "closed"


def test_a_lake_with_commits_is_planned_first_and_a_no_op_starts_no_engine(
        corpus, media: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    source, lake = corpus("h264.mp4"), tmp_path / "lake"
    assert label_run.run_label(_config(source, lake)).videos == 1
    recorder = Recorder(monkeypatch)

    assert label_run.run_label(_config(source, lake), recorder.engine).videos == 0
    assert recorder.events == ["listing", "listed", "plan ended"]  # no engine at all

    recorder.events.clear()
    (source / "lossless.mkv").write_bytes((media / "lossless.mkv").read_bytes())
    assert label_run.run_label(_config(source, lake), recorder.engine).videos == 1
    events = recorder.events
    assert events[0] == "listing" and "planned h264.mp4" not in events
    assert (events.index("planned lossless.mkv") < events.index("engine made")
            < events.index("models requested") < events.index("probing"))


def test_the_first_units_are_decoded_before_the_listing_ends(
        corpus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Listing streams into planning and decoding: the listing's last page waits
    until a unit's result has come back, which a run that listed everything
    before it planned would never see (and fail here)."""
    count = max(FIRST_WINDOW, PROBES_PER_BATCH) + 8  # past every batch the driver reads ahead
    source = corpus("h264.mp4")
    for index in range(1, count):
        shutil.copy(source / "h264.mp4", source / f"copy{index:03d}.mp4")
    decoded = threading.Event()
    listing = label_run.iter_corpus
    pages: list[int] = []

    def paged_listing(source: str, options: Any) -> Iterator[list[Any]]:
        for page in listing(source, options, page_size=1):
            if len(pages) == count - 1 and not decoded.wait(LISTING_WAIT_S):
                raise AssertionError("no unit was decoded before the listing's last page")
            pages.append(len(page))
            yield page

    class FirstResult(SequentialEngine):
        def run(self, *args: Any) -> Iterator[BatchResult]:
            for result in super().run(*args):
                decoded.set()
                yield result

    monkeypatch.setattr(label_run, "iter_corpus", paged_listing)
    summary = label_run.run_label(
        _config(source, tmp_path / "lake"),
        lambda config, analyses, settings: FirstResult(settings, analyses, config.storage))
    assert summary.status == "completed"
    assert (summary.videos, summary.counts.videos_ok, len(pages)) == (count, count, count)


def test_an_engine_started_for_nothing_is_closed_without_running(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    recorder = Recorder(monkeypatch)
    (tmp_path / "empty").mkdir()
    summary = label_run.run_label(_config(tmp_path / "empty", tmp_path / "lake"),
                                  recorder.engine)
    assert summary.videos == 0
    assert "probing" not in recorder.events and recorder.events.count("closed") == 1


def test_a_busy_lake_is_refused_before_any_engine_starts(
        corpus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The lock is taken first, so a run into a lake another run holds starts
    neither Ray nor a model, even when the lake has no commit yet."""
    recorder = Recorder(monkeypatch)
    lake = tmp_path / "lake"
    with LakeLock(str(lake), run_id="other-run", purpose="label"), \
            pytest.raises(LakeBusy):
        label_run.run_label(_config(corpus("h264.mp4"), lake), recorder.engine)
    assert recorder.events == []


# What the labelling path imports: the driver (CLI, run, Ray engine) and what its
# workers import to run the decode tasks and host the model actors. Ray Train,
# Ray Data and Tune serve `vidlake train` only; torch loads in the actors alone.
LABEL_PATH = ("jobs.cli", "jobs.label", "pipeline.runner.label_run",
              "pipeline.runner.ray_engine", "pipeline.runner.ray_tasks",
              "pipeline.runner.actor_pools", "pipeline.observe.ray_metrics",
              "pipeline.analyses.kinds")
TRAINING_ONLY = ("ray.train", "ray.data", "ray.tune", "pipeline.training.worker_loop",
                 "pipeline.training.clip_dataset")
DRIVER_NEVER = (*TRAINING_ONLY, "torch", "torchvision", "matplotlib", "duckdb")
REPO = Path(__file__).resolve().parents[2]


def _imported(prefixes: tuple[str, ...]) -> str:
    """Python text: the sorted names in sys.modules under any of `prefixes`."""
    return (f"sorted(m for m in sys.modules if m.split('.')[0] in {prefixes!r} "
            f"or m.startswith(tuple(p + '.' for p in {prefixes!r})) or m in {prefixes!r})")


def test_the_label_path_imports_no_training_no_ray_data_and_no_torch():
    script = f"import sys\nfor m in {LABEL_PATH!r}: __import__(m)\nprint({_imported(DRIVER_NEVER)})"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True, cwd=REPO)
    assert done.stdout.strip() == "[]", done.stdout


RUN_AND_LOOK = """
import json, sys, time
import ray
from jobs.label import parse_args
from pipeline.cli.label_options import label_config_from_args
from pipeline.runner import label_run
from pipeline.runner.engine_start import start_engine

config = label_config_from_args(parse_args(sys.argv[1:]))
summary = label_run.run_label(config)
driver = {driver}
started = start_engine(config, label_run.check_run(config)[0], label_run.engine_named("ray"))
actor = started.engine.actors.pools[0].actors[0]
ray.get(actor.ready.remote())
actor_modules = ray.get(actor.__ray_call__.remote(lambda _: {actor}))
torch_in_actor = ray.get(actor.__ray_call__.remote(lambda _: "torch" in sys.modules))
# an engine closed at once, its model still loading (a run with nothing to do)
early = start_engine(config, label_run.check_run(config)[0], label_run.engine_named("ray"))
loading = early.engine.actors.pools[0].actors[0]
early.close()
started.close()
gone = 0  # actors killed, not left behind (ray.kill is asynchronous: a call sent
for handle in (actor, loading):  # before the kill lands may still be answered)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            ray.get(handle.ready.remote(), timeout=120)
        except ray.exceptions.RayActorError:
            gone += 1
            break
print(json.dumps([summary.counts.frames, driver, actor_modules, torch_in_actor, gone]))
"""


@pytest.mark.slow
@pytest.mark.ray
def test_a_ray_run_imports_no_training_in_the_driver_or_the_model_actor(corpus,
                                                                        tmp_path: Path):
    """A whole `vidlake label` on a local Ray in a fresh process: afterwards the
    driver holds neither torch nor anything of training, and a model actor as
    the run makes it holds torch (its model) and nothing of training. Closing
    an engine kills its actors, also one still loading its model."""
    script = RUN_AND_LOOK.format(driver=_imported(DRIVER_NEVER),
                                 actor=_imported(TRAINING_ONLY))
    temp = tempfile.mkdtemp(prefix="vlray-", dir="/tmp")  # Ray's socket paths < 108 chars
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(RAY_TMPDIR=temp, PYTHONPATH=str(REPO))
    try:
        done = subprocess.run(
            [sys.executable, "-c", script, str(corpus("h264.mp4")), "--output",
             str(tmp_path / "lake"), "--sample", "uniform:2", "--size", "32"],
            capture_output=True, text=True, cwd=REPO, env=env, timeout=240)
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-3000:]
    frames, driver, actor, torch_in_actor, gone = json.loads(done.stdout.splitlines()[-1])
    assert frames == 2
    assert driver == [] and actor == [] and torch_in_actor
    assert gone == 2  # closing kills the actors, loaded or still loading
