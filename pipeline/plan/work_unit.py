"""WorkUnit: the unit of decoding, inference and commit."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from pipeline.config import FrameSize
from pipeline.corpus.video_ref import VideoRef

Clip = tuple[int, tuple[int, ...]]  # (clip_index, its frame indices in order)


@dataclass(frozen=True)
class AnalysisWork:
    """What one analysis does in one unit.

    `frames`: the sampled frames it owns (writes rows for); `clips`: the clips
    it owns; `context`: frames it reads but does not own (a shot detector's
    neighbours across the unit's edges). All frame indices count decoded
    frames of the video's chosen stream from 0.
    """

    analysis: str
    frames: tuple[int, ...] = ()
    clips: tuple[Clip, ...] = ()
    context: tuple[int, ...] = ()
    outputs: tuple[str, ...] = ()  # tables to write for this video (the rest exist)

    @property
    def reads(self) -> set[int]:
        """Every frame this analysis needs decoded in the unit."""
        return {*self.frames, *self.context, *(f for _, frames in self.clips for f in frames)}


@dataclass(frozen=True)
class WorkUnit:
    """A bounded slice of one video, decoded once for every analysis of the run.

    The unit owns the items (frames, clips) that start in [start_frame,
    end_frame). `frame_indices`, the union of the frames its analyses read,
    are sorted and unique and about `max_frames_per_unit` at most, which
    bounds a unit's decoded memory to frames x height x width x 3 bytes
    whatever the video's length. Frames are decoded at `size`.
    """

    unit_id: str
    video: VideoRef
    unit_index: int  # position of this unit within its video
    frame_indices: tuple[int, ...]
    fps: float
    start_frame: int = 0
    end_frame: int = 0  # exclusive
    work: tuple[AnalysisWork, ...] = ()
    size: FrameSize | None = None  # decode size; None: the run's default
    source_size: tuple[int, int] = (0, 0)  # (width, height) of the video as displayed
    # every frame it reads is a keyframe (by the probe's packet flags): each can be
    # decoded alone, without the frames before it in its GOP
    keyframes_only: bool = False

    @property
    def n_frames(self) -> int:
        return len(self.frame_indices)

    def work_for(self, analysis: str) -> AnalysisWork | None:
        return next((w for w in self.work if w.analysis == analysis), None)


def unit_id_for(video: VideoRef, analysis_key: str, start: int, end: int) -> str:
    """Deterministic id: the same video content, analyses and range give the same id."""
    raw = f"{video.content_key}\0{analysis_key}\0{start}\0{end}".encode()
    return hashlib.sha1(raw).hexdigest()[:20]
