"""The run's pieces alone, with plain values: the work plan, the streaming
planner's events, the unit assembler, and which storage errors are transient."""

from __future__ import annotations

import dataclasses
import errno
from typing import Any

import pyarrow as pa
import pytest

from pipeline.analyses.resolve import ResolvedAnalysis
from pipeline.config import AnalysisSpec, ExecutionSpec, FrameSize, LabelConfig, SampleSpec
from pipeline.corpus.video_ref import VideoRef
from pipeline.lake.commit_record import CommitRecord, UnitOutcome
from pipeline.lake.lake_state import LakeState, marker
from pipeline.plan.video_info import VideoInfo
from pipeline.plan.work_unit import AnalysisWork, WorkUnit
from pipeline.runner.batch_result import DecodeReport, UnitAssembler
from pipeline.runner.run_outputs import RunOutput, RunOutputs
from pipeline.runner.streaming_planner import StreamingPlanner
from pipeline.runner.video_ledger import DoneEarlier, Expected, Pending, Planned
from pipeline.runner.work_plan import VideoWork, WorkPlan, plan_videos
from pipeline.storage_retry import is_transient

NEW, DONE, FAILED, HELD = (VideoRef(f"file:///{n}.mp4", 10, "mtime:1")
                           for n in ("new", "done", "failed", "held"))
OUTPUTS = RunOutputs([RunOutput("frame_labels", "frame_labels", "frame_labels", "k1", "m", "v")])


def _ok(frames: int = 1) -> UnitOutcome:
    return UnitOutcome(video_key="", status="ok", error=None, decoder="decord",
                       decoder_n_frames=100, frames=frames)


def _state() -> LakeState:
    records = [CommitRecord("c1", "r1", videos_done=[marker(DONE.content_key, "k1")],
                            uris={DONE.content_key: DONE.uri}),
               CommitRecord("c2", "r2", videos_failed={marker(FAILED.content_key, "k1"): "bad",
                                                       marker(HELD.content_key, "k1"): "bad"}),
               CommitRecord("c3", "r3", videos_failed={marker(HELD.content_key, "k1"): "worse"})]
    return LakeState.of(records)


def _plan(refs: list[VideoRef], state: LakeState, **policy: Any) -> tuple[WorkPlan,
                                                                        list[VideoWork]]:
    plan = WorkPlan()
    return plan, list(plan_videos(refs, OUTPUTS, state, plan, **policy))


def test_the_work_plan_does_what_the_lake_lacks_and_holds_what_failed_too_often():
    plan, todo = _plan([NEW, DONE, FAILED, HELD], _state(), max_attempts=2)
    assert [(w.ref, w.reason, w.attempts) for w in todo] == [(NEW, "new", 0),
                                                             (FAILED, "retry", 1)]
    assert [(q.ref, q.attempts, q.error) for q in plan.quarantined] == [(HELD, 2, "worse")]
    assert plan.done == 1
    assert plan.summary() == "2 to process (1 new, 1 retry), 1 done, 1 quarantined"
    forced = _plan([HELD], _state(), max_attempts=2, retry_failed=True)[1]
    assert [w.reason for w in forced] == ["retry"]


INFO = VideoInfo(NEW, codec="h264", container="mp4", width=64, height=64, fps=25.0,
                 n_frames=100, duration_s=4.0)


def _planner(done_units: dict[str, UnitOutcome]) -> StreamingPlanner:
    """A planner of INFO's frame labels (every 10th frame, 4 a unit) over a lake
    that holds `done_units`."""
    spec = AnalysisSpec("frame_labels", sample=SampleSpec.parse("every:10"),
                        size=FrameSize(32, 32))
    config = LabelConfig(source="src", output="lake",
                         execution=ExecutionSpec(max_frames_per_unit=4))
    state = LakeState.of([CommitRecord("c", "r", units=done_units)])
    planner = StreamingPlanner(config, [ResolvedAnalysis("frame_labels", spec, "v", "m")],
                               OUTPUTS, state, _plan([NEW], state, max_attempts=1)[1])
    assert list(planner.refs()) == [NEW]  # the engine takes the video on
    assert planner.events() == [Pending(NEW, {"frame_labels": ("frame_labels",)})]
    return planner


def test_the_planner_reports_each_video_before_its_units_and_its_count_after():
    planner = _planner({})
    units = list(planner([INFO]))
    assert len(units) == 3  # 10 sampled frames, 4 a unit
    assert planner.events() == [Expected(INFO, {"frame_labels": ("frame_labels",)}),
                                Planned(NEW.content_key, 3)]
    assert planner.events() == []  # each event is handed over once
    assert (planner.units_total, planner.units_planned, planner.units_skipped) == (3, 3, 0)


def test_units_committed_earlier_are_events_not_work():
    first = next(_planner({})([INFO]))
    done = dataclasses.replace(_ok(4), video_key=NEW.content_key)
    planner = _planner({first.unit_id: done})
    units = list(planner([INFO]))
    assert len(units) == 2 and first.unit_id not in {u.unit_id for u in units}
    assert planner.events() == [Expected(INFO, {"frame_labels": ("frame_labels",)}),
                                DoneEarlier(NEW.content_key, done),
                                Planned(NEW.content_key, 3)]
    assert planner.units_skipped == 1


def _unit(uid: str, analyses: tuple[str, ...]) -> WorkUnit:
    work = tuple(AnalysisWork(a, frames=(0,)) for a in analyses)
    return WorkUnit(unit_id=uid, video=NEW, unit_index=0, frame_indices=(0,), fps=25.0,
                    work=work)


def test_the_assembler_hands_a_unit_on_once_every_model_answered():
    assembler = UnitAssembler(["labels", "boxes"])
    unit = _unit("u1", ("labels", "boxes", "shots"))
    shots = pa.table({"uri": [NEW.uri]})
    assert assembler.decoded(DecodeReport(unit, _ok(), {("shots", "shots"): shots}))
    assembler.add_model_rows([unit], {"labels": {}})
    assert assembler.take() == []
    assembler.add_model_rows([unit], {"boxes": {}})
    (result,) = assembler.take()
    assert result.outcomes == [(unit, _ok())] and set(result.tables) == {("shots", "shots")}
    assert assembler.take() == []


def test_a_unit_with_no_model_work_or_a_failed_decode_goes_on_at_once():
    assembler = UnitAssembler(["labels"])
    only_shots, broken = _unit("u1", ("shots",)), _unit("u2", ("labels",))
    failed = UnitOutcome(video_key="", status="error", error="corrupt", decoder="",
                         decoder_n_frames=0, frames=0)
    assert not assembler.decoded(DecodeReport(only_shots, _ok(), {}))
    assert not assembler.decoded(DecodeReport(broken, failed, {}))
    assert [r.outcomes[0][0].unit_id for r in assembler.take()] == ["u1", "u2"]


def test_an_abandoned_unit_fails_once():
    assembler = UnitAssembler(["labels", "boxes"])
    unit = _unit("u1", ("labels", "boxes"))
    assembler.decoded(DecodeReport(unit, _ok(), {}))
    assembler.abandon(unit, "inference timed out")
    assembler.abandon(unit, "inference timed out")  # the other pool's call too
    (result,) = assembler.take()
    assert result.outcomes[0][1].error == "inference timed out"


@pytest.mark.parametrize(("error", "transient"), [
    (ConnectionResetError(errno.ECONNRESET, "reset"), True),
    (TimeoutError("read timed out"), True),
    (OSError(errno.EBUSY, "SlowDown"), True),
    (OSError(errno.EIO, "We encountered an internal error. Please try again. 503"), True),
    (FileNotFoundError(errno.ENOENT, "no such key"), False),
    (PermissionError(errno.EACCES, "Access Denied"), False),
    (OSError(errno.EINVAL, "bad request"), False),
    (ValueError("not a storage error"), False),
])
def test_which_storage_errors_are_worth_a_retry(error: BaseException, transient: bool):
    assert is_transient(error) is transient
