"""Which listed videos a run processes, for which outputs, and why.

Decided per video from its listing and the lake's commit log, before any
probe, as the listing streams in: `vidlake relabel --dry-run` prints it, and
the real run plans exactly these videos, so the dry run predicts the run (for
an unchanged corpus and lake).

A video's output (an analysis's table) is to do unless its marker
(content version x analysis key) is done, or it failed `max_attempts` times
(quarantined: only `--retry-failed` tries it again). Reasons, first match:

- `retry`: an output of this content failed before;
- `resume`: units of this content are in the lake but it never finished
  (an interrupted run);
- `new`: the uri was never processed;
- `changed`: the uri was processed, but its content (size or etag) differs;
- `new-version`: this content was processed, not by this analysis version
  (a new model version, or options that change the rows).
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from pipeline.corpus.video_ref import VideoRef
from pipeline.lake.lake_state import LakeState, marker
from pipeline.runner.run_outputs import RunOutputs

REASONS = ("new", "changed", "new-version", "retry", "resume")


@dataclass(frozen=True)
class VideoWork:
    """A video the run processes: its outputs to write (analysis -> tables)."""

    ref: VideoRef
    reason: str
    outputs: dict[str, tuple[str, ...]]
    attempts: int = 0  # failed attempts so far, most of any of its outputs


@dataclass(frozen=True)
class Quarantined:
    """A video left alone: its outputs failed `attempts` times."""

    ref: VideoRef
    attempts: int
    error: str | None


@dataclass
class WorkPlan:
    """What planning found, counted as the videos stream by: how many were
    listed, to process (by reason) and done; the quarantined ones."""

    quarantined: list[Quarantined] = field(default_factory=list)
    done: int = 0
    reasons: Counter[str] = field(default_factory=Counter)  # of every video to process
    listed: int = 0

    @property
    def to_process(self) -> int:
        return sum(self.reasons.values())

    def summary(self) -> str:
        """`7 to process (3 new, 4 retry), 12 done, 1 quarantined`."""
        detail = ", ".join(f"{self.reasons[r]} {r}" for r in REASONS if self.reasons[r])
        return (f"{self.to_process} to process" + (f" ({detail})" if detail else "")
                + f", {self.done} done, {len(self.quarantined)} quarantined")


def work_line(work: VideoWork, outputs: RunOutputs) -> str:
    """`reason  uri  table@analysis_key,...` (and the attempt, for a retry)."""
    gets = ",".join(f"{t}@{outputs.key(n, t)}" for n, ts in work.outputs.items() for t in ts)
    retry = f"  (attempt {work.attempts + 1})" if work.attempts else ""
    return f"{work.reason:<12}{work.ref.uri}  {gets}{retry}"


def quarantined_line(item: Quarantined) -> str:
    return (f"{'quarantined':<12}{item.ref.uri}  after {item.attempts} failed attempts: "
            f"{item.error}")


def _reason(ref: VideoRef, state: LakeState, failed: bool,
            known_uris: Callable[[], set[str]]) -> str:
    key = ref.content_key
    if failed:
        return "retry"
    if key not in state.uris and state.started(key):
        return "resume"
    if ref.uri not in known_uris():
        return "new"
    return "changed" if key not in state.uris else "new-version"


def plan_videos(refs: Iterable[VideoRef], run_outputs: RunOutputs, state: LakeState,
                plan: WorkPlan, *, max_attempts: int,
                retry_failed: bool = False) -> Iterator[VideoWork]:
    """The videos of `refs` that still need some of `run_outputs`, as `refs`
    goes; `plan` counts every video (listed, done, quarantined, reasons)."""
    known_uris = functools.cache(state.known_uris)  # only a video to do asks
    for ref in refs:
        plan.listed += 1
        outputs: dict[str, tuple[str, ...]] = {}
        attempts = 0  # of the outputs to do
        held: list[tuple[int, str | None]] = []  # quarantined outputs: attempts, reason
        for name in run_outputs.analyses:
            todo = []
            for output in run_outputs.of_analysis(name):
                mark = marker(ref.content_key, output.key)
                if mark in state.videos_done:
                    continue
                tried = state.attempts(mark)
                if tried >= max_attempts and not retry_failed:
                    held.append((tried, state.last_error(mark)))
                    continue
                attempts = max(attempts, tried)
                todo.append(output.table)
            if todo:
                outputs[name] = tuple(todo)
        if outputs:
            work = VideoWork(ref, _reason(ref, state, attempts > 0, known_uris), outputs,
                             attempts)
            plan.reasons[work.reason] += 1
            yield work
        elif held:
            plan.quarantined.append(Quarantined(ref, *max(held, key=lambda h: h[0])))
        else:
            plan.done += 1

