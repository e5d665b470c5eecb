"""ShotDetector: content-based shot boundaries, run next to the decoder.

Each sampled frame (every frame by default) is reduced to a small HSV image;
its score is the mean absolute HSV difference to the previous sampled frame,
in [0, 1]. A frame is a candidate cut when its score passes the threshold
(or, adaptive, stands out from its neighbours' scores). Units read a few
neighbour frames past their edges, so every candidate is decided exactly as
a pass over the whole video would; the video-level step then applies the
minimum shot length over all candidates and writes `shots` rows that tile
the video.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from pipeline.analyses.base import UnitRows
from pipeline.analyses.kind import AnalysisKind
from pipeline.analyses.model_loader import ModelInfo
from pipeline.analyses.options import AnalysisOptions, option
from pipeline.analyses.rows import table_in
from pipeline.config import AnalysisSpec, FrameSize, SampleSpec
from pipeline.decode.decoded_unit import DecodedUnit
from pipeline.lake.commit_record import UnitOutcome
from pipeline.lake.schemas import SHOTS
from pipeline.plan.video_info import VideoInfo
from pipeline.values import fraction, integer, number


@dataclass(frozen=True)
class ShotOptions(AnalysisOptions):
    """Content-based cut detection (scores are mean HSV differences in [0, 1]).

    A frame starts a new shot when its score is at least `threshold`, or, with
    `adaptive` > 0, when its score is `adaptive` times the mean score of the
    `window` frames on either side and at least `min_score`. Cuts closer than
    `min_shot_len` frames to the previous cut are dropped. The defaults are
    PySceneDetect's (27 and 15 on its 0-255 scale, 15 frames, window 2).
    """

    threshold: float = option(27 / 255, fraction, "content score (0 to 1) that makes a cut",
                              flag="--shot-threshold")
    adaptive: float = option(0.0, number(0, 1000),
                             "cut when a frame's score is this many times its neighbours' "
                             "mean (0: fixed threshold only)", flag="--shot-adaptive")
    window: int = option(2, integer(1, 1000), "adaptive: neighbours on either side")
    min_score: float = option(15 / 255, fraction, "adaptive: lowest score that can cut")
    min_shot_len: int = option(15, integer(1, 10**9), "fewest frames in a shot",
                               flag="--min-shot-len")

    @property
    def detector(self) -> str:
        """The `shots.detector` value."""
        return "adaptive" if self.adaptive > 0 else "content"

    def context(self) -> int:
        return self.window

    def method(self) -> str:
        return self.detector


SCORE_SIDE = 64  # frames are block-averaged to about this many pixels a side
_MEANINGFUL = 0.15  # value/saturation from which hue and saturation count fully


def small_hsv(frames: np.ndarray) -> np.ndarray:
    """uint8 RGB [N, H, W, 3] -> float32 HSV [N, h, w, 3] in [0, 1], block-averaged
    so the shorter side is about SCORE_SIDE pixels (noise and size independence)."""
    n, height, width, _ = frames.shape
    k = max(1, min(height, width) // SCORE_SIDE)
    h, w = height // k * k, width // k * k
    blocks = frames[:, :h, :w].reshape(n, h // k, k, w // k, k, 3).mean(axis=(2, 4))
    rgb = blocks.astype(np.float32) / 255.0
    value = rgb.max(axis=-1)
    chroma = value - rgb.min(axis=-1)
    saturation = np.where(value > 0, chroma / np.maximum(value, 1e-6), 0.0)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    safe = np.maximum(chroma, 1e-6)
    hue = np.where(value == r, (g - b) / safe % 6,
                   np.where(value == g, (b - r) / safe + 2, (r - g) / safe + 4)) / 6.0
    hue = np.where(chroma > 0, hue, 0.0)
    return np.stack([hue, saturation, value], axis=-1).astype(np.float32)


def content_scores(hsv: np.ndarray) -> np.ndarray:
    """float32 [N]: score of each frame against the one before (NaN for the first).

    Mean of the hue (circular), saturation and value absolute differences.
    Hue and saturation mean nothing in near-black or grey pixels (a fade to
    black would flip them at random), so their differences count in
    proportion to how bright (and, for hue, how saturated) both pixels are.
    """
    scores = np.full(len(hsv), np.nan, np.float32)
    if len(hsv) < 2:
        return scores
    before, after = hsv[:-1], hsv[1:]
    diff = np.abs(after - before)
    hue = np.minimum(diff[..., 0], 1.0 - diff[..., 0]) * 2  # hue wraps around
    lit = np.clip(np.minimum(before[..., 2], after[..., 2]) / _MEANINGFUL, 0, 1)
    vivid = np.clip(np.minimum(before[..., 1], after[..., 1]) / _MEANINGFUL, 0, 1)
    per_pixel = (hue * lit * vivid + diff[..., 1] * lit + diff[..., 2]) / 3
    scores[1:] = per_pixel.mean(axis=(1, 2))
    return scores


def is_candidate(scores: np.ndarray, position: int, spec: ShotOptions) -> bool:
    """Whether the frame at `position` of a run of consecutive sampled frames'
    `scores` starts a new shot (before the minimum shot length is applied)."""
    score = float(scores[position])
    if not np.isfinite(score):
        return False
    if spec.adaptive <= 0:
        return score >= spec.threshold
    lo, hi = max(0, position - spec.window), position + spec.window + 1
    around = np.concatenate([scores[lo:position], scores[position + 1 : hi]])
    around = around[np.isfinite(around)]
    mean = float(around.mean()) if around.size else 0.0
    return score >= spec.min_score and (mean <= 0 or score >= spec.adaptive * mean)


def keep_min_length(cuts: list[list[float]], first: int, min_len: int) -> list[list[float]]:
    """Drop cuts [frame, ts, score] closer than `min_len` frames to the last kept
    cut (or to the video's first frame), scanning forward."""
    kept: list[list[float]] = []
    previous = first
    for cut in sorted(cuts):
        if cut[0] - previous >= min_len:
            kept.append(cut)
            previous = int(cut[0])
    return kept


class ShotDetector:
    """The `shots` analysis; no model, so it runs in the decode worker."""

    on_decoder = True

    def __init__(self, name: str, spec: AnalysisSpec) -> None:
        self.name = name
        self.spec = spec

    def setup(self) -> ModelInfo:
        return ModelInfo(self.spec.options.detector, (), "", None)

    def process(self, units: list[DecodedUnit]) -> dict[str, UnitRows]:
        out = {}
        for decoded in units:
            work = decoded.unit.work_for(self.name)
            if decoded.ok and work is not None and work.frames:
                out[decoded.unit.unit_id] = UnitRows(summary=self._unit_summary(decoded,
                                                                                work.frames,
                                                                                work.context))
        return out

    def _unit_summary(self, decoded: DecodedUnit, owned: tuple[int, ...],
                      context: tuple[int, ...]) -> dict[str, Any]:
        frames = sorted({*owned, *context})
        scores = content_scores(small_hsv(decoded.take(frames)))
        stamps = decoded.stamps(frames)
        position = {f: i for i, f in enumerate(frames)}
        cuts = [[f, round(float(stamps[position[f]]), 6), round(float(scores[position[f]]), 4)]
                for f in owned if is_candidate(scores, position[f], self.spec.options)]
        ends = [owned[0], owned[-1]]
        return {"cuts": cuts, "first": [ends[0], float(stamps[position[ends[0]]])],
                "last": [ends[1], float(stamps[position[ends[1]]])]}

    def finish_video(self, info: VideoInfo, outcomes: list[UnitOutcome]) -> dict[str, pa.Table]:
        """`shots` rows of a video whose units all succeeded; none otherwise."""
        summaries = [o.summaries.get(self.name) for o in outcomes]
        if not summaries or any(o.status != "ok" for o in outcomes) or None in summaries:
            return {}
        first = min((s["first"] for s in summaries if s), key=lambda x: x[0])
        last = max((s["last"] for s in summaries if s), key=lambda x: x[0])
        cuts = keep_min_length([c for s in summaries if s for c in s["cuts"]], 0,
                               self.spec.options.min_shot_len)
        counted = max((o.decoder_n_frames for o in outcomes), default=0)
        n_frames = max(int(last[0]) + 1, counted or info.n_frames)
        fps = info.fps or 1.0
        starts = [0, *(int(c[0]) for c in cuts)]
        start_s = [float(first[1]) - float(first[0]) / fps, *(float(c[1]) for c in cuts)]
        end_s = [*start_s[1:], float(last[1]) + (n_frames - int(last[0])) / fps]
        columns = {"uri": [info.ref.uri] * len(starts), "shot_index": list(range(len(starts))),
                   "start_frame": starts, "end_frame": [*starts[1:], n_frames],
                   "start_s": [round(s, 6) for s in start_s],
                   "end_s": [round(s, 6) for s in end_s],
                   "detector": [self.spec.options.detector] * len(starts)}
        return {"shots": table_in(columns, SHOTS)}


SHOTS_KIND = AnalysisKind(
    name="shots", summary="shot boundaries from HSV content changes (no model)",
    options=ShotOptions, common=("sample", "size"), tables={"shots": SHOTS},
    build=lambda name, spec, **_: ShotDetector(name, spec),
    sample=SampleSpec("all"), size=FrameSize(64, 64), run_wide_sample=False)
