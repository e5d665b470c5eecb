"""FrameClassifier: frame CNN labels (top-k) and/or embeddings per sampled frame.

One forward pass gives both: logits, and the penultimate features captured
at the input of the last Linear layer.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from pipeline.analyses.base import UnitRows
from pipeline.analyses.kind import AnalysisKind
from pipeline.analyses.model_analysis import ModelAnalysis
from pipeline.analyses.options import NoOptions
from pipeline.analyses.rows import list_column, split_rows, table_in, topk_columns
from pipeline.config import FrameSize
from pipeline.decode.decoded_unit import DecodedUnit
from pipeline.lake.schemas import FRAME_EMBEDDINGS, FRAME_LABELS
from pipeline.models.frame_cnn import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    attach_feature_tap,
    fuse_for_inference,
)


class FrameClassifier(ModelAnalysis):
    """Runs a frame CNN over each unit's sampled frames.

    Frames (uint8 [F, H, W, 3]) are scaled to [0, 1] and normalized with
    ImageNet mean/std, as torchvision's classifiers expect.
    """

    _tap: Any = None

    @property
    def labels(self) -> bool:
        return "frame_labels" in self.spec.outputs

    @property
    def embeddings(self) -> bool:
        return "frame_embeddings" in self.spec.outputs

    def prepare(self, model: Any) -> Any:
        import torch

        model = fuse_for_inference(model)
        self._tap = attach_feature_tap(model)
        self._mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255
        self._std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255
        return model.to(memory_format=torch.channels_last)

    def _forward(self, batch: Any) -> tuple[np.ndarray, np.ndarray | None]:
        """float [N, 3, H, W] 0..255 -> (probabilities [N, C], features [N, D] or None)."""
        import torch

        mean, std = self._mean.to(batch.device), self._std.to(batch.device)
        batch = ((batch - mean) / std).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), self.autocast():
            logits = self._model(batch)
        probs = torch.softmax(logits.float(), dim=1).cpu().numpy()
        feats = self._tap.features.float().cpu().numpy() if self.embeddings else None
        return probs, feats

    def _forward_all(self, batches: list[Any]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Each unit's frames (float [n, 3, H, W]), in order, through the model in
        micro-batches that span units of the same size: a batch of one-frame
        videos is one forward pass, not one per video. -> probabilities and
        features (empty without embeddings), in the same order."""
        import torch

        probs: list[np.ndarray] = []
        feats: list[np.ndarray] = []
        runs: list[list[Any]] = []  # consecutive units of one frame size
        for batch in batches:
            if runs and runs[-1][0].shape[1:] == batch.shape[1:]:
                runs[-1].append(batch)
            else:
                runs.append([batch])
        for run in runs:
            frames = torch.cat(run) if len(run) > 1 else run[0]
            for start in range(0, len(frames), self.micro_batch):
                p, f = self._forward(frames[start : start + self.micro_batch])
                probs.append(p)
                if f is not None:
                    feats.append(f)
        return probs, feats

    def process(self, units: list[DecodedUnit]) -> dict[str, UnitRows]:
        import torch

        todo = self.work(units)
        if not todo:
            return {}
        with torch.inference_mode():
            probs, feats = self._forward_all(
                [self.resized(d.take(w.frames), self.size_for(d)) for d, w in todo])
        index = np.concatenate([np.asarray(w.frames, np.int64) for _, w in todo])
        stamps = np.concatenate([d.stamps(w.frames) for d, w in todo])
        uris = [d.unit.video.uri for d, w in todo for _ in w.frames]
        tables = self._tables(uris, index, stamps, np.concatenate(probs),
                              np.concatenate(feats) if feats else None)
        ids, counts = [d.unit.unit_id for d, _ in todo], [len(w.frames) for _, w in todo]
        split = {name: split_rows(table, ids, counts) for name, table in tables.items()}
        return {d.unit.unit_id: UnitRows({name: parts[d.unit.unit_id]
                                          for name, parts in split.items()
                                          if name in w.outputs or not w.outputs})
                for d, w in todo}

    def _tables(self, uris: list[str], index: np.ndarray, stamps: np.ndarray,
                probs: np.ndarray, feats: np.ndarray | None) -> dict[str, Any]:
        info = self.loaded()
        common = {"uri": uris, "frame_index": index, "timestamp_s": np.round(stamps, 6),
                  **self.tail(len(uris))}
        out = {}
        if self.labels:
            columns = {**common, **topk_columns(probs, info.label_names, self.spec.model.top_k)}
            out["frame_labels"] = table_in(columns, FRAME_LABELS)
        if feats is not None:
            emb = list_column(feats.astype(np.float32).ravel(), feats.shape[1], pa.float32())
            out["frame_embeddings"] = table_in({**common, "embedding": emb}, FRAME_EMBEDDINGS)
        return out



_FRAME_COMMON = ("model", "weights", "labels", "top_k", "sample", "size", "actors", "num_gpus",
                 "num_cpus", "batch")
FRAME_LABELS_KIND = AnalysisKind(
    name="frame_labels", summary="top-k labels per sampled frame from a frame CNN",
    options=NoOptions, common=_FRAME_COMMON,
    tables={"frame_labels": FRAME_LABELS, "frame_embeddings": FRAME_EMBEDDINGS},
    build=FrameClassifier, family="frame", size=FrameSize(224, 224))
FRAME_EMBEDDINGS_KIND = AnalysisKind(
    name="frame_embeddings", summary="penultimate-layer features per sampled frame",
    options=NoOptions, common=tuple(o for o in _FRAME_COMMON if o not in ("labels", "top_k")),
    tables={"frame_embeddings": FRAME_EMBEDDINGS}, build=FrameClassifier, family="frame")
