"""LakeState: what the commit log says is done, failed or in progress.

A video marker is `<video_key>:<analysis_key>`: one version of a video's
content (VideoRef.content_key) under one output of one analysis version
(planner.analysis_key). A marker is done once a commit says so; each commit
that says it failed is one failed attempt. Unit outcomes say which parts of
an unfinished video are already in the lake.

A repair (`vidlake check --repair`) retires markers and units whose rows were
lost: from then on they are as if never done or tried, until a later commit
does them again. So records are applied in commit-id order, which is the
order they were written in (commit ids start with their run's UTC timestamp;
see `lake_check.repair_commit_id` for how a repair keeps to it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pipeline.lake.commit_record import CommitRecord, UnitOutcome

# A checkpoint's unit outcomes, read only when asked for: (the video keys to
# read, or None for all) -> unit id -> outcome. A million-video lake has a
# million of them, and a run needs only those of the videos it has to do.
UnitReader = Callable[[set[str] | None], dict[str, UnitOutcome]]


def marker(video_key: str, analysis_key: str) -> str:
    """The marker of one video content version under one analysis output."""
    return f"{video_key}:{analysis_key}"


def video_key_of(mark: str) -> str:
    """The content key a marker names (content keys are hex: no ':' in them)."""
    return mark.split(":", 1)[0]


@dataclass(eq=False)
class LakeState:
    """The commit records applied in commit-id order: facts add up, and a
    repair's retirements take back what came before them.

    A state read from a checkpoint leaves its unit outcomes there (`base_units`)
    until `unit_outcomes` is asked for; `ok_units_of` reads only some videos'."""

    units: dict[str, UnitOutcome] = field(default_factory=dict)  # recorded since the base
    videos_done: set[str] = field(default_factory=set)
    failures: dict[str, list[str]] = field(default_factory=dict)  # marker -> reasons
    uris: dict[str, str] = field(default_factory=dict)  # video_key -> uri
    started_videos: set[str] = field(default_factory=set)  # video keys with a unit in
    base_units: UnitReader | None = None
    replaced: set[str] = field(default_factory=set)  # base units retired or recorded again

    @property
    def unit_outcomes(self) -> dict[str, UnitOutcome]:
        """Every unit's outcome (reads the whole base the first time)."""
        if self.base_units is not None:
            merged = {u: o for u, o in self.base_units(None).items() if u not in self.replaced}
            merged.update(self.units)
            self.units, self.base_units, self.replaced = merged, None, set()
        return self.units

    def ok_units_of(self, video_keys: Iterable[str]) -> dict[str, UnitOutcome]:
        """Units in the lake (status ok) of these content keys."""
        keys = set(video_keys)
        found: dict[str, UnitOutcome] = {}
        if self.base_units is not None and keys:
            found = {u: o for u, o in self.base_units(keys).items() if u not in self.replaced}
        found.update({u: o for u, o in self.units.items() if o.video_key in keys})
        return {u: o for u, o in found.items() if o.status == "ok"}

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, LakeState) and self._facts() == other._facts()

    def _facts(self) -> tuple[Any, ...]:
        return (self.unit_outcomes, self.videos_done, self.failures, self.uris,
                self.started_videos)

    @classmethod
    def of(cls, records: Iterable[CommitRecord]) -> LakeState:
        """The state after `records`, whatever order they come in."""
        state = cls()
        for record in sorted(records, key=lambda r: r.commit_id):
            state.add(record)
        return state

    def add(self, record: CommitRecord) -> None:
        """Apply one record: call in commit-id order (retirements undo earlier facts)."""
        self.retire(record.retired_markers, record.retired_units)
        self.units.update(record.units)
        if self.base_units is not None:
            self.replaced.update(record.units)
        self.started_videos.update(o.video_key for o in record.units.values())
        self.videos_done.update(record.videos_done)
        for key, reason in record.videos_failed.items():
            self.failures.setdefault(key, []).append(reason)
        self.uris.update(record.uris)

    def retire(self, markers: Iterable[str], units: Iterable[str]) -> None:
        """Forget `markers` (done, and their failed attempts) and `units`."""
        for mark in markers:
            self.videos_done.discard(mark)
            self.failures.pop(mark, None)
        for unit in units:
            self.units.pop(unit, None)
            if self.base_units is not None:
                self.replaced.add(unit)

    def attempts(self, key: str) -> int:
        """Failed attempts of a marker."""
        return len(self.failures.get(key, ()))

    def last_error(self, key: str) -> str | None:
        reasons = self.failures.get(key)
        return reasons[-1] if reasons else None

    def started(self, video_key: str) -> bool:
        """True when some unit of this content version is in the lake."""
        return video_key in self.started_videos

    def known_uris(self) -> set[str]:
        """Every uri a finished marker names."""
        return set(self.uris.values())

    def ok_units(self) -> dict[str, UnitOutcome]:
        """Units whose rows are in the lake; a failed unit runs again when its
        video is planned again (it has no rows, so a retry duplicates nothing)."""
        return {uid: o for uid, o in self.unit_outcomes.items() if o.status == "ok"}
