"""ClipClassifier: a label per clip of T frames, from a 3D CNN or a CNN+RNN.

Clips are preprocessed as each model documents: torchvision's video models
resize, centre-crop and normalize with Kinetics statistics; the CNN+RNN
family (and a custom `module:function` clip model) resizes every frame to
its input size with ImageNet statistics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.analyses.base import UnitRows
from pipeline.analyses.kind import AnalysisKind
from pipeline.analyses.model_analysis import ModelAnalysis
from pipeline.analyses.options import AnalysisOptions, option
from pipeline.analyses.rows import split_rows, table_in, topk_columns
from pipeline.config import ClipSpec, SampleSpec
from pipeline.decode.decoded_unit import DecodedUnit
from pipeline.lake.schemas import CLIP_LABELS
from pipeline.models.registry import RNN_ARCHS, is_custom
from pipeline.values import integer

if TYPE_CHECKING:  # cnn_rnn imports torch at once: only the actor imports it
    from pipeline.models.cnn_rnn import CnnRnnConfig


class ClipClassifier(ModelAnalysis):
    """Runs a clip model over each unit's clips (uint8 [N, T, H, W, 3] batches)."""

    def _batch(self, clips: np.ndarray) -> Any:
        """uint8 [N, T, H, W, 3] -> the model's input tensor on the device."""
        info = self.loaded()
        if info.arch in RNN_ARCHS or is_custom(info.arch):
            from pipeline.models.cnn_rnn import frames_batch

            return frames_batch(clips, self._frames_config(info.arch, info.config),
                                self._device)
        from pipeline.models.video_cnn import clip_batch, trained_preprocess

        return clip_batch(clips, trained_preprocess(info.arch, info.config), self._device)

    def _frames_config(self, arch: str, config: dict[str, Any]) -> CnnRnnConfig:
        """How frames are prepared for a CNN+RNN (its checkpoint's `cnn_rnn`) or a
        custom clip model: float [N, T, 3, S, S], ImageNet-normalized, S the
        analysis's width (else the default). A custom builder's config holds its
        own keywords, not vidlake's: a `cnn_rnn` key there is never read (from_dict
        would refuse an odd one mid-run)."""
        from pipeline.models.cnn_rnn import CnnRnnConfig

        if arch in RNN_ARCHS:
            return CnnRnnConfig.from_dict(config.get("cnn_rnn") or {})
        return CnnRnnConfig(input_size=self.spec.size.width) if self.spec.size else \
            CnnRnnConfig()

    def infer(self, clips: np.ndarray) -> np.ndarray:
        """Probabilities float32 [N, C] of clips uint8 [N, T, H, W, 3]."""
        import torch

        self.loaded()
        per_call = max(1, self.micro_batch // max(1, clips.shape[1]))
        out = []
        for start in range(0, len(clips), per_call):
            with torch.inference_mode(), self.autocast():
                logits = self._model(self._batch(clips[start : start + per_call]))
            out.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
        return np.concatenate(out) if out else np.empty((0, 0), np.float32)

    def _infer_by_shape(self, clips: list[np.ndarray]) -> np.ndarray:
        """Probabilities float32 [N, C] of clips (uint8 [T, H, W, 3] each), in order.
        Videos of one batch can be decoded at different sizes (a detector in the
        run keeps each video's aspect ratio), so clips are stacked per shape."""
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, clip in enumerate(clips):
            by_shape.setdefault(clip.shape, []).append(i)
        probs: np.ndarray | None = None
        for indices in by_shape.values():
            part = self.infer(np.stack([clips[i] for i in indices]))
            if probs is None:
                probs = np.empty((len(clips), part.shape[1]), np.float32)
            probs[indices] = part
        return probs if probs is not None else np.empty((0, 0), np.float32)

    def process(self, units: list[DecodedUnit]) -> dict[str, UnitRows]:
        todo = [(d, w) for d, w in self.work(units) if w.clips]
        if not todo:
            return {}
        probs = self._infer_by_shape([d.take(frames) for d, w in todo for _, frames in w.clips])
        rows: dict[str, list[Any]] = {k: [] for k in
                                      ("uri", "clip_index", "start_frame", "end_frame",
                                       "start_s", "end_s")}
        for decoded, work in todo:
            for clip_index, frames in work.clips:
                stamps = decoded.stamps([frames[0], frames[-1]])
                fps = decoded.unit.fps or 1.0
                rows["uri"].append(decoded.unit.video.uri)
                rows["clip_index"].append(clip_index)
                rows["start_frame"].append(frames[0])
                rows["end_frame"].append(frames[-1] + 1)  # exclusive
                rows["start_s"].append(round(float(stamps[0]), 6))
                # the end of the clip's last frame: its timestamp plus one frame
                rows["end_s"].append(round(float(stamps[1]) + 1.0 / fps, 6))
        columns = {**rows, **topk_columns(probs, self.loaded().label_names, self.spec.model.top_k),
                   **self.tail(len(rows["uri"]))}
        table = table_in(columns, CLIP_LABELS)
        ids, counts = [d.unit.unit_id for d, _ in todo], [len(w.clips) for _, w in todo]
        return {uid: UnitRows({"clip_labels": t}) for uid, t in
                split_rows(table, ids, counts).items()}


MAX_CLIP_LEN = 1024  # frames in a clip, and between them
MAX_CLIPS_PER_VIDEO = 10_000


@dataclass(frozen=True)
class ClipOptions(AnalysisOptions):
    """Which clips a video gives: `clip_len` frames taken every `frame_step`
    frames; starts `clip_stride` frames apart, or (stride 0) `clips_per_video`
    clips centred in equal segments."""

    clip_len: int = option(0, integer(1, MAX_CLIP_LEN), "frames per clip", flag="--clip-len",
                           shown="the checkpoint's, else the model's documented length")
    frame_step: int = option(0, integer(1, MAX_CLIP_LEN), "frame step inside a clip",
                             flag="--clip-step", shown="the checkpoint's, else 1")
    clips_per_video: int = option(1, integer(1, MAX_CLIPS_PER_VIDEO),
                                  "clips per video, centred in equal segments",
                                  flag="--clips-per-video")
    clip_stride: int = option(0, integer(1, 10**9),
                              "frames between clip starts (instead of clips_per_video)",
                              flag="--clip-stride", shown="none: clips_per_video")

    def clips(self) -> ClipSpec:
        return ClipSpec(clip_len=self.clip_len, frame_step=self.frame_step,
                        clips_per_video=self.clips_per_video, stride=self.clip_stride)


CLIP_LABELS_KIND = AnalysisKind(
    name="clip_labels", summary="top-k labels per clip from a 3D CNN or a CNN+RNN",
    options=ClipOptions, common=("model", "weights", "labels", "top_k", "sample", "size",
                                 "actors", "num_gpus", "num_cpus", "batch"),
    tables={"clip_labels": CLIP_LABELS}, build=ClipClassifier, family="clip",
    sample=SampleSpec("all"))
