"""Split probed videos into WorkUnits with a bounded number of frames each."""

from __future__ import annotations

import hashlib

from pipeline.config import LabelConfig, SampleSpec
from pipeline.plan.sampling import sample_indices
from pipeline.plan.video_info import VideoInfo
from pipeline.plan.work_unit import WorkUnit, unit_id_for


def analysis_key(config: LabelConfig, model_version: str) -> str:
    """What makes two runs' outputs for the same video the same: the analysis
    (model and version, sampling, size, outputs). Part of every unit id and of
    the video-done marker, so a run with other settings is new work."""
    model = config.model
    raw = "\0".join([model.name, model_version, str(config.sample), str(config.size),
                     str(model.top_k), str(model.embeddings)])
    return hashlib.sha1(raw.encode()).hexdigest()[:12]


def plan_video(info: VideoInfo, sample: SampleSpec, max_frames: int, key: str) -> list[WorkUnit]:
    """Units of one video, in frame order; empty when the video failed to probe."""
    if not info.ok:
        return []
    indices = sample_indices(sample, info.n_frames, info.fps).tolist()
    chunks = [indices[i : i + max_frames] for i in range(0, len(indices), max_frames)]
    return [
        WorkUnit(unit_id=unit_id_for(info.ref, key, chunk[0], chunk[-1] + 1), video=info.ref,
                 unit_index=i, n_units=len(chunks), frame_indices=tuple(chunk), fps=info.fps)
        for i, chunk in enumerate(chunks)
    ]
