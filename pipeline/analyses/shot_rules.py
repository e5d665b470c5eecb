"""Which scored frames start a shot: PySceneDetect 0.7's rules, per frame and
per video.

Per frame (decided in the unit, which reads enough context for it):
- content: a frame is *above* when its score is at least the threshold.
- adaptive: a frame is a *candidate* when its score is at least
  `min_content_val` and at least `adaptive_threshold` times the mean score of
  the `window` frames on either side (ratio 255 when that mean is ~0).
  The first `window` frames and the last `window` are never candidates
  (PySceneDetect's rolling buffer never centres on them); the video's first
  frame takes part in the mean with its score 0.0.

Per video (in frame order, over every unit's frames):
- content: PySceneDetect's flash filter in its default MERGE mode (`flash_merge`).
- adaptive: a candidate cuts when it is at least `min_len` frames after the
  last cut, the video's first frame counting as one (`keep_min_length`).

Frame numbers are the frames' indices; PySceneDetect counts from presentation
times (the same numbers for constant frame rate video).
"""

from __future__ import annotations

import numpy as np

RATIO_CAP = 255.0  # PySceneDetect caps the adaptive ratio here
_ZERO_MEAN = 0.00001  # below this the neighbours' mean counts as zero


def adaptive_ratio(scores: np.ndarray, position: int, window: int,
                   min_content_val: float) -> float | None:
    """The score at `position` over the mean of the `window` scores on each
    side (float64 scores of consecutive frames; None when a neighbour is
    missing, i.e. the frame is too close to the video's start or end)."""
    lo, hi = position - window, position + window + 1
    if lo < 0 or hi > len(scores):
        return None
    around = [float(s) for s in (*scores[lo:position], *scores[position + 1:hi])]
    if any(np.isnan(s) for s in around):
        return None
    mean = sum(around) / (2.0 * window)  # Python's float sum, in frame order
    target = float(scores[position])
    if abs(mean) >= _ZERO_MEAN:
        return min(target / mean, RATIO_CAP)
    return RATIO_CAP if target >= min_content_val else 0.0


def keep_min_length(cuts: list[list[float]], first: int, min_len: int) -> list[list[float]]:
    """Adaptive: drop cuts [frame, ts, score] closer than `min_len` frames to the
    last kept cut (or to the video's first frame `first`), scanning forward."""
    kept: list[list[float]] = []
    previous = first
    for cut in sorted(cuts):
        if cut[0] - previous >= min_len:
            kept.append(cut)
            previous = int(cut[0])
    return kept


def flash_merge(above: list[int], first: int, last: int, min_len: int) -> list[int]:
    """Content: cut frames from the frames whose score reached the threshold
    (`above`, any order) in a video whose frames run from `first` to `last`,
    by PySceneDetect's FlashFilter in MERGE mode:

    - an above frame at least `min_len` frames after the previous above frame
      (initially `first`) cuts, and enables merging;
    - once enabled, an above frame closer than that starts a merge instead: the
      burst of above frames that follows is one cut, reported at its last
      above frame, once `min_len` frames without one have passed and the burst
      itself spans at least `min_len` frames (else it waits for a later one);
      a merge still open at the video's end is dropped.

    Non-above frames matter only as the frames on which a merge closes: every
    frame between two above frames is one (all frames are scored).
    """
    if min_len <= 0:
        return sorted(set(above))
    cuts: list[int] = []
    last_above, enabled, merging, merge_start = first, False, False, first
    for frame in [*sorted(set(above)), None]:
        closes_by = last if frame is None else frame - 1  # last non-above frame before it
        if merging and last_above - merge_start >= min_len and \
                last_above + min_len <= closes_by:
            cuts.append(last_above)
            merging = False
        if frame is None:
            break
        long_enough = frame - last_above >= min_len
        last_above = frame
        if merging:
            continue
        if long_enough:
            enabled = True
            cuts.append(frame)
        elif enabled:
            merging, merge_start = True, frame
    return cuts
