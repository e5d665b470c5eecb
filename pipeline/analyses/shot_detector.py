"""ShotDetector: shot boundaries as PySceneDetect 0.7 finds them, run next to
the decoder.

Every frame (the `all` sample) is scored against the one before as
PySceneDetect's ContentDetector scores it (shot_scores.py), on the frames the
unit decodes anyway, at the video's own size unless `size` says otherwise.
Units read context frames past their edges (the frame before; for `adaptive`
`window` more on each side), so each frame's per-frame decision is the one a
pass over the whole video makes; the rules that depend on every earlier frame
(content's flash filter, the minimum shot length) run at the video level in
`finish_video`, over the candidates every unit kept (shot_rules.py). The
`shots` rows tile the video.
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
from pipeline.analyses.shot_rules import adaptive_ratio, flash_merge, keep_min_length
from pipeline.analyses.shot_scores import content_scores, resize_linear, scoring_frames
from pipeline.config import AnalysisSpec, SampleSpec
from pipeline.decode.decoded_unit import DecodedUnit
from pipeline.lake.commit_record import UnitOutcome
from pipeline.lake.schemas import SHOTS
from pipeline.plan.needs import analysis_size
from pipeline.plan.video_info import VideoInfo
from pipeline.values import integer, number, one_of

METHODS = ("content", "adaptive")


@dataclass(frozen=True)
class ShotOptions(AnalysisOptions):
    """PySceneDetect 0.7's ContentDetector (`content`) or AdaptiveDetector
    (`adaptive`), with its defaults; scores on its 0-255 scale (shot_scores.py,
    shot_rules.py). Thresholds below 1 are refused: they were the 0-1 scale of
    vidlake before parity, and every frame would cut."""

    method: str = option("content", one_of(*METHODS), "content: a fixed threshold on the "
                         "score; adaptive: a score that stands out from its neighbours'; "
                         "transnetv2: the learned detector (the shots_transnetv2 analysis)",
                         flag="--shot-method")
    threshold: float = option(27.0, number(1, 255), "content: score (0-255) that makes a cut",
                              flag="--shot-threshold")
    adaptive_threshold: float = option(3.0, number(0, 255, above=True),
                                       "adaptive: cut when a score is this many times its "
                                       "neighbours' mean")
    window: int = option(2, integer(1, 1000), "adaptive: neighbours on either side")
    min_content_val: float = option(15.0, number(0, 255), "adaptive: lowest score that can cut")
    min_shot_len: int = option(15, integer(0, 10**9), "fewest frames in a shot (0: no limit)",
                               flag="--min-shot-len")

    @property
    def detector(self) -> str:
        """The `shots.detector` value."""
        return self.method

    def context(self) -> int:
        """content: the frame before a unit's first; adaptive: `window` more each side."""
        return self.window if self.method == "adaptive" else 0

    def method_name(self) -> str:
        return self.method

    def reads_source_size(self) -> bool:
        return True


def unit_candidates(scores: np.ndarray, positions: list[int],
                    spec: ShotOptions) -> list[int]:
    """Positions (of `positions`, into `scores`) whose frame is a candidate:
    content, its score reaches the threshold; adaptive, it stands out from its
    neighbours (shot_rules.adaptive_ratio) and reaches min_content_val."""
    if spec.method == "content":
        return [p for p in positions if scores[p] >= spec.threshold]
    found = []
    for p in positions:
        ratio = adaptive_ratio(scores, p, spec.window, spec.min_content_val)
        if ratio is not None and ratio >= spec.adaptive_threshold and \
                scores[p] >= spec.min_content_val:
            found.append(p)
    return found


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

    def _frames(self, decoded: DecodedUnit, frames: list[int]) -> np.ndarray:
        """The frames at this analysis's size: the unit decodes once at the largest
        size any analysis needs (the same pixels as PySceneDetect's only when that
        is this analysis's own)."""
        pixels = decoded.take(frames)
        size = analysis_size(self.spec, decoded.unit.source_size)
        return resize_linear(pixels, size)

    def _unit_summary(self, decoded: DecodedUnit, owned: tuple[int, ...],
                      context: tuple[int, ...]) -> dict[str, Any]:
        frames = sorted({*owned, *context})
        position = {f: i for i, f in enumerate(frames)}
        # fewer context frames before the first owned one than asked: the list
        # starts at the video's first frame, which PySceneDetect scores 0.0
        starts_video = position[owned[0]] < self.spec.options.context() + 1
        scores = content_scores(scoring_frames(self._frames(decoded, frames)), starts_video)
        stamps = decoded.stamps(frames)
        found = unit_candidates(scores, [position[f] for f in owned], self.spec.options)
        cuts = [[frames[p], round(float(stamps[p]), 6), round(float(scores[p]), 4)]
                for p in found]
        ends = [owned[0], owned[-1]]
        return {"cuts": cuts, "first": [ends[0], float(stamps[position[ends[0]]])],
                "last": [ends[1], float(stamps[position[ends[1]]])]}

    def video_cuts(self, candidates: list[list[float]], first: int,
                   last: int) -> list[list[float]]:
        """The cuts [frame, ts, score] of a video whose frames run from `first` to
        `last`, from every unit's candidates (shot_rules)."""
        options = self.spec.options
        if options.method == "adaptive":
            return keep_min_length(candidates, first, options.min_shot_len)
        by_frame = {int(c[0]): c for c in candidates}
        return [by_frame[f] for f in flash_merge(list(by_frame), first, last,
                                                 options.min_shot_len)]

    def finish_video(self, info: VideoInfo, outcomes: list[UnitOutcome]) -> dict[str, pa.Table]:
        """`shots` rows of a video whose units all succeeded; none otherwise."""
        summaries = [o.summaries.get(self.name) for o in outcomes]
        if not summaries or any(o.status != "ok" for o in outcomes) or None in summaries:
            return {}
        first = min((s["first"] for s in summaries if s), key=lambda x: x[0])
        last = max((s["last"] for s in summaries if s), key=lambda x: x[0])
        cuts = self.video_cuts([c for s in summaries if s for c in s["cuts"]], int(first[0]),
                               int(last[0]))
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
    name="shots", summary="shot boundaries as PySceneDetect's content/adaptive detectors "
    "find them (no model)",
    options=ShotOptions, common=("sample", "size"), tables={"shots": SHOTS},
    build=lambda name, spec, **_: ShotDetector(name, spec),
    sample=SampleSpec("all"), size=None, run_wide_sample=False,
    variants={"transnetv2": "shots_transnetv2"})
