"""WorkUnit: the unit of decoding, inference and commit."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from pipeline.corpus.video_ref import VideoRef


@dataclass(frozen=True)
class WorkUnit:
    """A bounded slice of one video: the sampled frames in [start_frame, end_frame).

    `frame_indices` are sorted and unique; there are at most
    `max_frames_per_unit` of them, which bounds a unit's decoded memory to
    frames x height x width x 3 bytes whatever the video's length.
    """

    unit_id: str
    video: VideoRef
    unit_index: int  # position of this unit within its video
    n_units: int  # units of this video in the plan
    frame_indices: tuple[int, ...]
    fps: float

    @property
    def start_frame(self) -> int:
        return self.frame_indices[0]

    @property
    def end_frame(self) -> int:
        """Exclusive end of the frame range this unit covers."""
        return self.frame_indices[-1] + 1

    @property
    def n_frames(self) -> int:
        return len(self.frame_indices)


def unit_id_for(video: VideoRef, analysis_key: str, start: int, end: int) -> str:
    """Deterministic id: the same video content, analysis and range give the same id."""
    raw = f"{video.content_key}\0{analysis_key}\0{start}\0{end}".encode()
    return hashlib.sha1(raw).hexdigest()[:20]
