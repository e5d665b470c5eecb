"""Turn a SampleSpec into the sorted, unique frame indices to decode.

`sampled_in` gives the indices inside one window [lo, hi) of the video, so the
planner walks a video of any length in bounded pieces: no array is ever sized
by the frame count a container claims. `sample_indices` is the whole list
(tools and tests; the same values, window by window).

`keyframes` and the approximate samplers (`uniform:8~`) need the video's
keyframe indices (int64, sorted: from the probe's pass over the packets);
an approximate sample is the set of keyframes at or before the exact
sample's targets, so two targets in one GOP give one frame.
"""

from __future__ import annotations

import math

import numpy as np

from pipeline.config import SampleSpec

Keyframes = np.ndarray | None  # int64 [K] sorted frame indices of keyframes, when known

# Frames of exact targets looked at per step when snapping to keyframes: bounds
# memory when one GOP spans a long stretch of densely sampled video.
_SNAP_CHUNK = 1 << 16


def sample_indices(spec: SampleSpec, n_frames: int, fps: float,
                   keyframes: Keyframes = None) -> np.ndarray:
    """Frame indices (int64, sorted, unique, within [0, n_frames)) for `spec`.

    uniform:N picks the centre frame of N equal segments; fps:F steps through
    the video by fps/F frames (every frame when F >= fps); every:K takes
    0, K, 2K...; all takes every frame. Allocates O(n_frames) for `all`: the
    planner uses `sampled_in` instead.
    """
    return sampled_in(spec, n_frames, fps, 0, n_frames, keyframes)


def _fps_step(spec: SampleSpec, fps: float) -> float:
    """Frames between fps:F samples; <= 1 means every frame."""
    return fps / spec.value if fps > 0 else 1.0


def sampled_in(spec: SampleSpec, n_frames: int, fps: float, lo: int, hi: int,
               keyframes: Keyframes = None) -> np.ndarray:
    """The indices `sample_indices` gives that lie in [lo, hi), int64 sorted;
    O(hi - lo) memory at most, whatever `n_frames` is."""
    lo, hi = max(0, lo), min(hi, n_frames)
    if hi <= lo:
        return np.empty(0, dtype=np.int64)
    if spec.needs_keyframes:
        if keyframes is None:
            raise ValueError(f"--sample {spec} needs the video's keyframes (probe them)")
        keys = keyframes[np.searchsorted(keyframes, lo):np.searchsorted(keyframes, hi)]
        return keys if spec.kind == "keyframes" else _snapped_in(spec, n_frames, fps, keyframes,
                                                                 keys)
    if spec.kind == "all" or (spec.kind == "fps" and _fps_step(spec, fps) <= 1.0):
        return np.arange(lo, hi, dtype=np.int64)
    if spec.kind == "every":
        step = int(spec.value)
        return np.arange(-(-lo // step) * step, hi, step, dtype=np.int64)
    if spec.kind == "uniform":
        count = min(int(spec.value), n_frames)
        # centre i is floor((i + 0.5) * n / count): only i near [lo, hi) can land there
        first = max(0, math.floor(lo * count / n_frames - 0.5) - 1)
        last = min(count, math.ceil(hi * count / n_frames) + 1)
        centres = (np.arange(first, last) + 0.5) * n_frames / count
        picked = np.floor(centres).astype(np.int64)
    else:
        frame_step = _fps_step(spec, fps)
        first = max(0, math.floor(lo / frame_step) - 1)
        last = math.ceil(hi / frame_step) + 1
        picked = np.floor(np.arange(first, last, dtype=np.float64) * frame_step + 1e-9).astype(
            np.int64)
    return np.unique(picked[(picked >= lo) & (picked < hi)])


def _snapped_in(spec: SampleSpec, n_frames: int, fps: float, keyframes: np.ndarray,
                keys: np.ndarray) -> np.ndarray:
    """Which of `keys` (the keyframes of a window, sorted) some exact target of
    `spec` snaps to: a target in [key, next keyframe). Targets before the first
    keyframe (a stream that does not start on one) snap to it."""
    if keys.size == 0:
        return keys
    after = int(np.searchsorted(keyframes, keys[-1], side="right"))
    start = 0 if keys[0] == keyframes[0] else int(keys[0])
    stop = int(keyframes[after]) if after < keyframes.size else n_frames
    found = []
    for lo in range(start, stop, _SNAP_CHUNK):
        targets = sampled_in(spec.exact, n_frames, fps, lo, min(stop, lo + _SNAP_CHUNK))
        slots = np.searchsorted(keyframes, targets, side="right") - 1
        found.append(keyframes[np.maximum(slots, 0)])
    return np.unique(np.concatenate(found)) if found else keys[:0]


def sampled_before(spec: SampleSpec, n_frames: int, fps: float, frame: int,
                   count: int, keyframes: Keyframes = None) -> np.ndarray:
    """The last `count` sampled indices before `frame` (fewer near the start)."""
    span = max(64, 2 * count)
    while True:
        lo = max(0, frame - span)
        found = sampled_in(spec, n_frames, fps, lo, frame, keyframes)
        if len(found) >= count or lo == 0:
            return found[max(0, len(found) - count):] if count else found[:0]
        span *= 4


def sampled_after(spec: SampleSpec, n_frames: int, fps: float, frame: int,
                  count: int, keyframes: Keyframes = None) -> np.ndarray:
    """The first `count` sampled indices after `frame` (fewer near the end)."""
    span = max(64, 2 * count)
    while True:
        hi = min(n_frames, frame + 1 + span)
        found = sampled_in(spec, n_frames, fps, frame + 1, hi, keyframes)
        if len(found) >= count or hi == n_frames:
            return found[:count]
        span *= 4
