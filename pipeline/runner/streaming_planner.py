"""StreamingPlanner: the work stream -> videos to probe; probe results -> the
units still to run, lazily.

The engine pulls videos (`refs`) and units as it has room, so listing,
planning, probing and decoding overlap and the driver holds only what is in
flight. What planning learns about each video (that it is pending, its
outputs, its units committed earlier, its unit count) is kept as VideoEvents
for the run to hand to its committer before the results that follow them.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable, Iterator

from pipeline.analyses.resolve import ResolvedAnalysis
from pipeline.config import AnalysisSpec, LabelConfig
from pipeline.corpus.video_ref import VideoRef
from pipeline.lake.commit_record import UnitOutcome
from pipeline.lake.lake_state import LakeState
from pipeline.plan.planner import plan_video
from pipeline.plan.video_info import VideoInfo
from pipeline.plan.work_unit import WorkUnit
from pipeline.runner.batch_result import BatchResult
from pipeline.runner.run_outputs import RunOutputs
from pipeline.runner.video_ledger import DoneEarlier, Expected, Pending, Planned, VideoEvent
from pipeline.runner.work_plan import VideoWork

FIRST_WINDOW = 16  # videos read ahead of the engine at first (the first probe waits on it)
MAX_WINDOW = 4096  # ... doubling up to this (one lookup of earlier units per window)


def combined_key(keys: list[str]) -> str:
    """The key of a set of analyses done together (part of unit ids)."""
    return "+".join(sorted(keys))


class StreamingPlanner:
    """Turns probe results into units as the engine asks for them: decoding
    starts after the first probe batch, and the driver holds only the units in
    flight (`plan_video` walks each video lazily). What planning learns about
    each video (its outputs, its units committed earlier, its unit count) is
    kept as `VideoEvent`s for the run to hand to its committer: nothing here
    calls out."""

    def __init__(self, config: LabelConfig, resolved: list[ResolvedAnalysis],
                 outputs: RunOutputs, state: LakeState, work: Iterable[VideoWork]) -> None:
        self.config = config
        self.specs = {r.name: r.spec for r in resolved}
        self.outputs = outputs
        self.state = state
        self._work = iter(work)
        self.work: dict[str, VideoWork] = {}  # uri -> work, pulled and not yet planned
        self.done: dict[str, UnitOutcome] = {}  # unit id -> outcome, of videos in `work`
        self.units_total = 0
        self.units_skipped = 0
        self.units_planned = 0  # to run, so far
        self.videos_planned = 0  # whose units are all known
        self._events: list[VideoEvent] = []
        self._ends: dict[str, int] = {}  # content key -> frames the stream really has

    def refs(self) -> Iterator[VideoRef]:
        """The videos to probe, as the engine asks for them: the work stream is
        read a window ahead (16 videos, doubling to 4096) so that the units an
        earlier run committed are looked up once a window, only for videos an
        earlier run started."""
        size = FIRST_WINDOW
        while window := list(itertools.islice(self._work, size)):
            size = min(2 * size, MAX_WINDOW)
            started = [w.ref.content_key for w in window if self.state.started(w.ref.content_key)]
            if started:
                self.done.update(self.state.ok_units_of(started))
            for work in window:
                self.work[work.ref.uri] = work
                self._events.append(Pending(work.ref, work.outputs))
                yield work.ref

    def __call__(self, infos: list[VideoInfo]) -> Iterator[WorkUnit]:
        """The units still to run of `infos`."""
        for info in infos:
            yield from self._video(info)

    def events(self) -> list[VideoEvent]:
        """What planning learnt since the last call, in order."""
        events, self._events = self._events, []
        return events

    def _video(self, info: VideoInfo) -> Iterator[WorkUnit]:
        specs = self._missing(info.ref.uri)
        key = combined_key([self.outputs.key(n, o) for n, s in specs.items() for o in s.outputs])
        content = info.ref.content_key
        self._events.append(Expected(info, {name: spec.outputs for name, spec in specs.items()}))
        count = 0
        for unit in plan_video(info, specs, self.config.execution.max_frames_per_unit, key):
            if unit.start_frame >= self._ends.get(content, unit.start_frame + 1):
                break  # the stream ended before this unit: the header over-counted
            count += 1
            if unit.unit_id in self.done:
                self._events.append(DoneEarlier(content, self.done.pop(unit.unit_id)))
                self.units_skipped += 1
                continue
            self.units_planned += 1
            yield unit
        self.units_total += count
        self.videos_planned += 1
        self._events.append(Planned(content, count))

    def observe(self, result: BatchResult) -> None:
        """Learn where streams really end: a unit that found its video's end
        before frames it wanted stops the planning of that video there."""
        for unit, outcome in result.outcomes:
            end = outcome.decoder_n_frames
            if outcome.status != "ok" and 0 < end <= unit.frame_indices[-1]:
                key = unit.video.content_key
                self._ends[key] = min(end, self._ends.get(key, end))

    def _missing(self, uri: str) -> dict[str, AnalysisSpec]:
        """The analyses, each cut down to the outputs the work plan gives this video."""
        outputs = self.work.pop(uri).outputs
        return {name: dataclasses.replace(spec, outputs=outputs[name])
                for name, spec in self.specs.items() if name in outputs}
