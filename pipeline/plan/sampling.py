"""Turn a SampleSpec into the sorted, unique frame indices to decode."""

from __future__ import annotations

import numpy as np

from pipeline.config import SampleSpec


def sample_indices(spec: SampleSpec, n_frames: int, fps: float) -> np.ndarray:
    """Frame indices (int64, sorted, unique, within [0, n_frames)) for `spec`.

    uniform:N picks the centre frame of N equal segments; fps:F steps through
    the video by fps/F frames (every frame when F >= fps); every:K takes
    0, K, 2K...; all takes every frame.
    """
    if n_frames <= 0:
        return np.empty(0, dtype=np.int64)
    if spec.kind == "all":
        return np.arange(n_frames, dtype=np.int64)
    if spec.kind == "every":
        return np.arange(0, n_frames, int(spec.value), dtype=np.int64)
    if spec.kind == "uniform":
        count = min(int(spec.value), n_frames)
        centres = (np.arange(count) + 0.5) * n_frames / count
        return np.unique(np.floor(centres).astype(np.int64))
    step = fps / spec.value if fps > 0 else 1.0
    if step <= 1.0:
        return np.arange(n_frames, dtype=np.int64)
    positions = np.arange(0.0, n_frames, step)
    return np.unique(np.floor(positions + 1e-9).astype(np.int64))
