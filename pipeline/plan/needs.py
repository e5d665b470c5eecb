"""What each analysis needs from one video: the frames and clips it owns.

Pure functions of a resolved AnalysisSpec and a probed video, asked window
by window ([lo, hi) frame ranges): the planner walks a video in bounded
pieces and packs the needs of every analysis of a run into shared WorkUnits.
"""

from __future__ import annotations

import bisect
import functools
import math
from dataclasses import dataclass, field

import numpy as np

from pipeline.config import AnalysisSpec, ClipSpec, FrameSize, SampleSpec
from pipeline.plan.sampling import sample_indices, sampled_after, sampled_before, sampled_in
from pipeline.plan.video_info import VideoInfo
from pipeline.plan.work_unit import Clip

DETECTION_LONG_SIDE = 640  # detections decode at this longer side, aspect kept


def clip_starts(clip: ClipSpec, span: int, n_frames: int) -> list[int]:
    """First frames of the clips of a video of `n_frames` frames, each `span`
    frames long: `stride` apart from 0, or `clips_per_video` centred in equal
    segments. A video shorter than a clip gets one clip from frame 0.
    (Whole list: O(n_frames / stride); the planner asks `AnalysisNeed.clips_in`.)"""
    if clip.stride > 0:
        return [start for _, start in _strided_starts_in(clip.stride, span, n_frames, 0,
                                                         n_frames)]
    return _centred_starts(clip.clips_per_video, span, n_frames)


def _strided_starts_in(stride: int, span: int, n_frames: int, lo: int,
                       hi: int) -> list[tuple[int, int]]:
    """(clip index, first frame) of the clips `stride` apart that start in [lo, hi)."""
    hi = min(hi, max(0, n_frames - span) + 1)
    first = -(-max(lo, 0) // stride)
    return [(k, k * stride) for k in range(first, math.ceil(hi / stride)) if k * stride < hi]


def _centred_starts(count: int, span: int, n_frames: int) -> list[int]:
    """First frames of `count` clips centred in equal segments, sorted, unique.
    O(count): a flag the user gives (bounded when parsed), never a header."""
    last_start = max(0, n_frames - span)
    centres = (np.arange(count) + 0.5) * n_frames / count
    return sorted({int(s) for s in np.clip(np.floor(centres - span / 2), 0, last_start)})


def clip_frames(start: int, clip_len: int, step: int, n_frames: int) -> tuple[int, ...]:
    """Frames of one clip; past the video's end the last frame repeats (short
    videos still give a clip of the model's length)."""
    return tuple(min(start + k * step, n_frames - 1) for k in range(clip_len))


@dataclass(frozen=True)
class AnalysisNeed:
    """One analysis's items in one video, asked for by frame window.

    `clip` (clips, cut from the frames of `sample` when it is not `all`) or
    else `sample` (single frames) says what it owns; `context`
    is how many neighbouring sampled frames an owned frame needs on each side,
    plus the one before (a shot detector's score compares a frame with the
    previous sampled one); -1: none. `keyframes` (int64 [K], sorted) are the
    video's keyframe indices, for samples that need them.
    """

    analysis: str
    n_frames: int
    fps: float
    sample: SampleSpec | None = None
    clip: ClipSpec | None = None
    context: int = -1
    keyframes: np.ndarray | None = field(default=None, compare=False)

    def frames_in(self, lo: int, hi: int) -> np.ndarray:
        """int64 [F]: the single frames it owns in [lo, hi), sorted."""
        if self.sample is None or self.clip is not None:
            return np.empty(0, np.int64)
        return sampled_in(self.sample, self.n_frames, self.fps, lo, hi, self.keyframes)

    def clips_in(self, lo: int, hi: int) -> list[Clip]:
        """The clips it owns whose first frame is in [lo, hi), in order."""
        if self.clip is None:
            return []
        if self.sample is not None and self.sample.kind != "all":
            return self._sampled_clips_in(lo, hi)
        clip = self.clip
        if clip.stride > 0:
            starts = _strided_starts_in(clip.stride, self._span, self.n_frames, lo, hi)
        else:
            centred = self._centred
            first, last = bisect.bisect_left(centred, lo), bisect.bisect_left(centred, hi)
            starts = [(k, centred[k]) for k in range(first, last)]
        return [(k, clip_frames(s, clip.clip_len, clip.frame_step, self.n_frames))
                for k, s in starts]

    def _sampled_clips_in(self, lo: int, hi: int) -> list[Clip]:
        """Clips of consecutive sampled frames (`frame_step` apart among them),
        whose first frame is in [lo, hi): clip starts count sampled frames."""
        clip, sampled = self.clip or ClipSpec(), self._sampled
        first, last = np.searchsorted(sampled, lo), np.searchsorted(sampled, hi)
        if clip.stride > 0:
            starts = _strided_starts_in(clip.stride, self._span, len(sampled), int(first),
                                        int(last))
        else:
            centred = _centred_starts(clip.clips_per_video, self._span, len(sampled))
            starts = [(k, p) for k, p in enumerate(centred) if first <= p < last]
        return [(k, tuple(int(sampled[p]) for p in
                          clip_frames(s, clip.clip_len, clip.frame_step, len(sampled))))
                for k, s in starts]

    @functools.cached_property
    def _sampled(self) -> np.ndarray:
        """int64 [S]: every sampled frame of the video (clips of a sample need
        its positions; O(S), bounded by the sample, not the frame count)."""
        if self.sample is None:
            return np.empty(0, np.int64)
        return sample_indices(self.sample, self.n_frames, self.fps, self.keyframes)

    @property
    def _span(self) -> int:
        """Frames from a clip's first frame to its last, inclusive."""
        clip = self.clip or ClipSpec()
        return (clip.clip_len - 1) * clip.frame_step + 1

    @functools.cached_property
    def _centred(self) -> list[int]:
        clip = self.clip or ClipSpec()
        return _centred_starts(clip.clips_per_video, self._span, self.n_frames)

    def context_of(self, owned: list[int]) -> tuple[int, ...]:
        """Frames before and after `owned` (a run of its frames) it reads but
        does not own."""
        if self.context < 0 or not owned or self.sample is None:
            return ()
        before = sampled_before(self.sample, self.n_frames, self.fps, owned[0],
                                self.context + 1, self.keyframes)
        after = sampled_after(self.sample, self.n_frames, self.fps, owned[-1], self.context,
                              self.keyframes)
        return tuple(int(f) for f in (*before, *after))


def need_for(analysis: str, spec: AnalysisSpec, info: VideoInfo) -> AnalysisNeed:
    """The need of `spec` (resolved: clip_len and sample set) for the video `info`:
    the clips its options ask for, else its sampled frames (with the context
    its options ask for)."""
    clips = spec.options.clips()
    if clips is not None:
        return AnalysisNeed(analysis, info.n_frames, info.fps, sample=spec.sample, clip=clips,
                            keyframes=info.keyframes)
    if spec.sample is None:
        raise ValueError(f"{analysis}: plan a resolved analysis (its sample is not set)")
    return AnalysisNeed(analysis, info.n_frames, info.fps, sample=spec.sample,
                        context=spec.options.context(), keyframes=info.keyframes)


def analysis_size(spec: AnalysisSpec, source_size: tuple[int, int]) -> FrameSize:
    """The frame size `spec` analyses a video of `source_size` (width, height)
    at (resolved spec; without --size: the video's own size for an analysis
    that asks for it (shots), else, for detections, the video's aspect ratio)."""
    if spec.size is not None:
        return spec.size
    width, height = max(source_size[0], 1), max(source_size[1], 1)
    if spec.options.reads_source_size():
        return FrameSize(max(8, width), max(8, height))
    scale = DETECTION_LONG_SIDE / max(width, height)
    return FrameSize(max(8, round(width * scale / 2) * 2), max(8, round(height * scale / 2) * 2))
