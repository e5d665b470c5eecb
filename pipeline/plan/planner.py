"""Pack the needs of every analysis of a run into shared, bounded WorkUnits.

Items (a sampled frame of one analysis, a clip of another) are ordered by
their first frame and packed greedily until a unit reads about
`max_frames` distinct frames. A unit owns the items that start in its
range and reads every frame they need, so a clip is never split and each
frame that several analyses want is decoded once.

Units are made lazily, walking the video window by window: planning holds
one window of items and one unit, so a container that claims billions of
frames costs no memory before a single frame is decoded (headers are hints).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from pipeline.analyses.options import keyed_values
from pipeline.config import AnalysisSpec, FrameSize, SampleSpec
from pipeline.plan.needs import AnalysisNeed, analysis_size, need_for
from pipeline.plan.video_info import VideoInfo
from pipeline.plan.work_unit import AnalysisWork, Clip, WorkUnit, unit_id_for


def analysis_key(spec: AnalysisSpec, model_version: str, output: str) -> str:
    """What makes two runs' `output` table rows of one analysis the same: its
    kind, model and version, frames, size and the options it declares as
    changing its output (not where or how it runs, and nothing of other
    kinds). Part of every unit id and of the video-done markers, so other
    settings are new work; keyed per output, so asking for embeddings later
    does not redo the labels."""
    raw = "\0".join([spec.kind, output, spec.model.name, model_version,
                     str(spec.model.top_k), str(spec.sample), str(spec.size),
                     keyed_values(spec.options)])
    return hashlib.sha1(raw.encode()).hexdigest()[:12]


@dataclass
class _Pack:
    """Items of one unit being packed."""

    first: int
    frames: dict[str, list[int]] = field(default_factory=dict)
    clips: dict[str, list[Clip]] = field(default_factory=dict)
    reads: set[int] = field(default_factory=set)

    def fits(self, first: int, reads: set[int], max_frames: int) -> bool:
        """Whether an item starting at `first` reading `reads` joins this pack.
        Items that start on the same frame stay together: unit ranges never overlap."""
        return first == self.first or len(self.reads) + len(reads - self.reads) <= max_frames

    def add(self, analysis: str, first: int, clip: Clip | None) -> None:
        if clip:
            self.clips.setdefault(analysis, []).append(clip)
            self.reads.update(clip[1])
        else:
            self.frames.setdefault(analysis, []).append(first)
            self.reads.add(first)


Item = tuple[int, str, Clip | None]  # (first frame, analysis, clip or None for a frame)

# Frames per planning window: a video is walked in windows, so planning holds
# O(window) items whatever the frame count. Windows with nothing sampled grow
# (sparse sampling of a long video), up to MAX_WINDOW.
WINDOW = 4096
MAX_WINDOW = 1 << 22


def _items_in(needs: Sequence[AnalysisNeed], lo: int, hi: int) -> list[Item]:
    """Every analysis's items starting in [lo, hi), by first frame."""
    items: list[Item] = []
    for need in needs:
        items.extend((int(f), need.analysis, None) for f in need.frames_in(lo, hi))
        items.extend((clip[1][0], need.analysis, clip) for clip in need.clips_in(lo, hi))
    items.sort(key=lambda item: item[0])
    return items


def _items(needs: Sequence[AnalysisNeed], n_frames: int) -> Iterator[Item]:
    """Every item of the video in first-frame order, one window at a time."""
    lo, window = 0, WINDOW
    while lo < n_frames:
        hi = min(n_frames, lo + window)
        found = _items_in(needs, lo, hi)
        yield from found
        window = WINDOW if found else min(MAX_WINDOW, window * 4)
        lo = hi


def _packs(items: Iterator[Item], max_frames: int) -> Iterator[tuple[_Pack, int | None]]:
    """Greedy packs of about `max_frames` distinct reads, each with the first
    frame of the pack after it (None for the last)."""
    current: _Pack | None = None
    for first, analysis, clip in items:
        reads = set(clip[1]) if clip else {first}
        if current is None or not current.fits(first, reads, max_frames):
            if current is not None:
                yield current, first
            current = _Pack(first)
        current.add(analysis, first, clip)
    if current is not None:
        yield current, None


def plan_video(info: VideoInfo, specs: dict[str, AnalysisSpec], max_frames: int,
               key: str) -> Iterator[WorkUnit]:
    """Units of one video for the analyses `specs` (id -> resolved spec), in
    frame order, made as they are asked for (planning memory is one window
    and one unit, not the frame count); none when the video failed to probe."""
    if not info.ok or not specs:
        return
    needs = {name: need_for(name, spec, info) for name, spec in specs.items()}
    size = decode_size([analysis_size(s, (info.width, info.height)) for s in specs.values()])
    packs = _packs(_items(list(needs.values()), info.n_frames), frames_per_unit(max_frames, size))
    for index, (pack, following) in enumerate(packs):
        end = following if following is not None else max(pack.reads) + 1
        work = tuple(
            AnalysisWork(name, tuple(pack.frames.get(name, ())), tuple(pack.clips.get(name, ())),
                         needs[name].context_of(pack.frames.get(name, [])),
                         outputs=specs[name].outputs)
            for name in specs if name in pack.frames or name in pack.clips)
        reads = sorted(set().union(*(w.reads for w in work)))
        yield WorkUnit(
            unit_id=unit_id_for(info.ref, key, pack.first, end), video=info.ref,
            unit_index=index, frame_indices=tuple(reads), fps=info.fps,
            start_frame=pack.first, end_frame=end, work=work, size=size,
            source_size=(info.width, info.height),
            keyframes_only=_all_keyframes(reads, info.keyframes))


# Decoded bytes one unit may hold: an analysis that reads frames at the video's
# own size (shots, for PySceneDetect's pixels) would otherwise hold 128 4K
# frames (3 GiB) in a unit.
UNIT_BYTES = 512 << 20


def frames_per_unit(max_frames: int, size: FrameSize) -> int:
    """`max_frames`, or fewer when that many frames of `size` (RGB, 1 byte a
    channel) would pass UNIT_BYTES; at least 1 (a clip is never split)."""
    return max(1, min(max_frames, UNIT_BYTES // (size.width * size.height * 3)))


def _all_keyframes(reads: list[int], keyframes: np.ndarray | None) -> bool:
    """Whether every frame in `reads` is a keyframe (unknown keyframes: no)."""
    return keyframes is not None and bool(np.isin(reads, keyframes).all())


def decode_size(sizes: list[FrameSize]) -> FrameSize:
    """One decode serves every analysis: the largest size any of them needs
    (each analysis scales down from it)."""
    return FrameSize(max(s.width for s in sizes), max(s.height for s in sizes))


def plan_sampled(info: VideoInfo, sample: SampleSpec, max_frames: int, key: str,
                 size: FrameSize | None = None, name: str = "frame_labels") -> list[WorkUnit]:
    """Units of a single frame analysis `name` over `sample` (tools and tests);
    without `size` the units leave the decode size to the DecodeSettings."""
    spec = AnalysisSpec("frame_labels", sample=sample, size=size or FrameSize(224, 224))
    units = list(plan_video(info, {name: spec}, max_frames, key))
    return units if size else [dataclasses.replace(u, size=None) for u in units]
