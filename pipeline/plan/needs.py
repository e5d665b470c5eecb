"""What each analysis needs from one video: the frames and clips it owns.

Pure functions of a resolved AnalysisSpec and a probed video; the planner
packs the needs of every analysis of a run into shared WorkUnits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.config import AnalysisSpec, ClipSpec, FrameSize
from pipeline.plan.sampling import sample_indices
from pipeline.plan.video_info import VideoInfo
from pipeline.plan.work_unit import Clip

DETECTION_LONG_SIDE = 640  # detections decode at this longer side, aspect kept


@dataclass(frozen=True)
class AnalysisNeed:
    """One analysis's items in one video.

    frames: int64 [F] sorted single frames it owns; clips: clips it owns;
    context: neighbours (positions in `frames`) an owned frame needs on each
    side, plus the one before (a shot detector's score compares a frame with
    the previous sampled one).
    """

    analysis: str
    frames: np.ndarray
    clips: tuple[Clip, ...] = ()
    context: int = -1  # -1: none


def clip_starts(clip: ClipSpec, span: int, n_frames: int) -> list[int]:
    """First frames of the clips of a video of `n_frames` frames, each `span`
    frames long: `stride` apart from 0, or `clips_per_video` centred in equal
    segments. A video shorter than a clip gets one clip from frame 0."""
    last_start = max(0, n_frames - span)
    if clip.stride > 0:
        return list(range(0, last_start + 1, clip.stride))
    count = clip.clips_per_video
    centres = (np.arange(count) + 0.5) * n_frames / count
    starts = np.clip(np.floor(centres - span / 2), 0, last_start).astype(np.int64)
    return sorted({int(s) for s in starts})


def clip_frames(start: int, clip_len: int, step: int, n_frames: int) -> tuple[int, ...]:
    """Frames of one clip; past the video's end the last frame repeats (short
    videos still give a clip of the model's length)."""
    return tuple(min(start + k * step, n_frames - 1) for k in range(clip_len))


def need_for(analysis: str, spec: AnalysisSpec, info: VideoInfo) -> AnalysisNeed:
    """The need of `spec` (resolved: clip_len set) for the video `info`."""
    empty = np.empty(0, np.int64)
    if spec.kind == "clip_labels":
        clip = spec.clip
        span = (clip.clip_len - 1) * clip.frame_step + 1
        clips = tuple((i, clip_frames(s, clip.clip_len, clip.frame_step, info.n_frames))
                      for i, s in enumerate(clip_starts(clip, span, info.n_frames)))
        return AnalysisNeed(analysis, empty, clips if info.n_frames > 0 else ())
    if spec.sample is None:
        raise ValueError(f"{analysis}: plan a resolved analysis (its sample is not set)")
    frames = sample_indices(spec.sample, info.n_frames, info.fps)
    if spec.kind == "shots":
        return AnalysisNeed(analysis, frames, context=spec.shots.window)
    return AnalysisNeed(analysis, frames)


def analysis_size(spec: AnalysisSpec, source_size: tuple[int, int]) -> FrameSize:
    """The frame size `spec` analyses a video of `source_size` (width, height)
    at (resolved spec; detections without --size keep the video's aspect ratio)."""
    if spec.size is not None:
        return spec.size
    width, height = max(source_size[0], 1), max(source_size[1], 1)
    scale = DETECTION_LONG_SIDE / max(width, height)
    return FrameSize(max(8, round(width * scale / 2) * 2), max(8, round(height * scale / 2) * 2))
