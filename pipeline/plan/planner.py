"""Pack the needs of every analysis of a run into shared, bounded WorkUnits.

Items (a sampled frame of one analysis, a clip of another) are ordered by
their first frame and packed greedily until a unit reads about
`max_frames` distinct frames. A unit owns the items that start in its
range and reads every frame they need, so a clip is never split and each
frame that several analyses want is decoded once.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from pipeline.config import AnalysisSpec, FrameSize, SampleSpec
from pipeline.plan.needs import AnalysisNeed, analysis_size, need_for
from pipeline.plan.video_info import VideoInfo
from pipeline.plan.work_unit import AnalysisWork, Clip, WorkUnit, unit_id_for


def analysis_key(spec: AnalysisSpec, model_version: str, output: str) -> str:
    """What makes two runs' `output` table rows of one analysis the same: its
    kind, model and version, frames, size and options (not where or how it
    runs). Part of every unit id and of the video-done markers, so other
    settings are new work; keyed per output, so asking for embeddings later
    does not redo the labels."""
    raw = "\0".join([spec.kind, output, spec.model.name, model_version,
                     str(spec.model.top_k), str(spec.sample), str(spec.size), str(spec.clip),
                     str(spec.detection), str(spec.shots)])
    return hashlib.sha1(raw.encode()).hexdigest()[:12]


@dataclass
class _Pack:
    """Items of one unit being packed."""

    first: int
    frames: dict[str, list[int]] = field(default_factory=dict)
    clips: dict[str, list[Clip]] = field(default_factory=dict)
    reads: set[int] = field(default_factory=set)


def _items(needs: Sequence[AnalysisNeed]) -> list[tuple[int, str, Clip | None]]:
    """(first frame, analysis, clip or None for a single frame), by first frame."""
    items: list[tuple[int, str, Clip | None]] = []
    for need in needs:
        items.extend((int(f), need.analysis, None) for f in need.frames)
        items.extend((clip[1][0], need.analysis, clip) for clip in need.clips)
    items.sort(key=lambda item: item[0])
    return items


def _pack(items: list[tuple[int, str, Clip | None]], max_frames: int) -> list[_Pack]:
    packs: list[_Pack] = []
    for first, analysis, clip in items:
        reads = set(clip[1]) if clip else {first}
        current = packs[-1] if packs else None
        # Items that start on the same frame stay together: unit ranges never overlap.
        if (current is None or (first > current.first
                                and len(current.reads) + len(reads - current.reads) > max_frames)):
            current = _Pack(first)
            packs.append(current)
        if clip:
            current.clips.setdefault(analysis, []).append(clip)
        else:
            current.frames.setdefault(analysis, []).append(first)
        current.reads |= reads
    return packs


def _context(need: AnalysisNeed, owned: list[int]) -> tuple[int, ...]:
    """Frames before and after `owned` (a run of need.frames) the owner reads."""
    if need.context < 0 or not owned:
        return ()
    lo = int(np.searchsorted(need.frames, owned[0]))
    hi = lo + len(owned)
    before = need.frames[max(0, lo - need.context - 1) : lo]
    after = need.frames[hi : hi + need.context]
    return tuple(int(f) for f in (*before, *after))


def plan_video(info: VideoInfo, specs: dict[str, AnalysisSpec], max_frames: int,
               key: str) -> list[WorkUnit]:
    """Units of one video for the analyses `specs` (id -> resolved spec), in
    frame order; empty when the video failed to probe."""
    if not info.ok or not specs:
        return []
    needs = {name: need_for(name, spec, info) for name, spec in specs.items()}
    packs = _pack(_items(list(needs.values())), max_frames)
    size = decode_size([analysis_size(s, (info.width, info.height)) for s in specs.values()])
    units = []
    for index, pack in enumerate(packs):
        end = packs[index + 1].first if index + 1 < len(packs) else max(pack.reads) + 1
        work = tuple(
            AnalysisWork(name, tuple(pack.frames.get(name, ())), tuple(pack.clips.get(name, ())),
                         _context(needs[name], pack.frames.get(name, [])),
                         outputs=specs[name].outputs)
            for name in specs if name in pack.frames or name in pack.clips)
        reads = sorted(set().union(*(w.reads for w in work)))
        units.append(WorkUnit(
            unit_id=unit_id_for(info.ref, key, pack.first, end), video=info.ref,
            unit_index=index, n_units=len(packs), frame_indices=tuple(reads), fps=info.fps,
            start_frame=pack.first, end_frame=end, work=work, size=size,
            source_size=(info.width, info.height)))
    return units


def decode_size(sizes: list[FrameSize]) -> FrameSize:
    """One decode serves every analysis: the largest size any of them needs
    (each analysis scales down from it)."""
    return FrameSize(max(s.width for s in sizes), max(s.height for s in sizes))


def plan_sampled(info: VideoInfo, sample: SampleSpec, max_frames: int, key: str,
                 size: FrameSize | None = None, name: str = "frame_labels") -> list[WorkUnit]:
    """Units of a single frame analysis `name` over `sample` (tools and tests);
    without `size` the units leave the decode size to the DecodeSettings."""
    spec = AnalysisSpec("frame_labels", sample=sample, size=size or FrameSize(224, 224))
    units = plan_video(info, {name: spec}, max_frames, key)
    return units if size else [dataclasses.replace(u, size=None) for u in units]
