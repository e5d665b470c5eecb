"""Detector: boxes per sampled frame from a torchvision detector.

Boxes come back in pixels of the frames the model saw and are mapped to
pixels of the original video frame (as coded), even when frames were
resized on decode with another aspect ratio.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.analyses.base import UnitRows
from pipeline.analyses.kind import AnalysisKind
from pipeline.analyses.model_analysis import ModelAnalysis
from pipeline.analyses.options import AnalysisOptions, option
from pipeline.analyses.rows import split_rows, table_in
from pipeline.decode.decoded_unit import DecodedUnit
from pipeline.lake.schemas import DETECTIONS
from pipeline.values import fraction, integer


class Detector(ModelAnalysis):
    """Runs a detector over each unit's sampled frames."""

    def build_options(self) -> dict[str, Any]:
        det: DetectionOptions = self.spec.options
        chosen = {"score_threshold": det.score_threshold, "max_boxes": det.max_boxes}
        if det.min_size:  # else the checkpoint's, else the detector's own
            chosen["min_size"] = det.min_size
        return chosen

    def _detect(self, batch: Any) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """float [N, 3, H, W] 0..255 on the device -> per frame (boxes float32 [K, 4]
        in pixels of these frames, labels int64 [K], scores float32 [K])."""
        from pipeline.models.detectors import detect_images

        out = []
        for start in range(0, len(batch), self.micro_batch):
            images = list(batch[start : start + self.micro_batch] / 255.0)
            with self.autocast():
                out.extend(detect_images(self._model, images))
        return out

    def process(self, units: list[DecodedUnit]) -> dict[str, UnitRows]:
        from pipeline.models.detectors import scale_boxes

        todo = self.work(units)
        if not todo:
            return {}
        names = np.asarray(self.loaded().label_names, dtype=object)
        det: DetectionOptions = self.spec.options
        cols: dict[str, list[Any]] = {k: [] for k in ("uri", "frame_index", "timestamp_s",
                                                       "label", "score", "boxes")}
        counts = []
        for decoded, work in todo:
            size = self.size_for(decoded)
            frames = self.resized(decoded.take(work.frames), size)
            stamps = decoded.stamps(work.frames)
            count = 0
            for frame_index, stamp, (boxes, labels, scores) in zip(
                    work.frames, stamps, self._detect(frames), strict=True):
                keep = np.flatnonzero(scores >= det.score_threshold)[: det.max_boxes]
                boxes = scale_boxes(boxes[keep], (size.width, size.height),
                                    decoded.unit.source_size)
                count += len(keep)
                cols["uri"].extend([decoded.unit.video.uri] * len(keep))
                cols["frame_index"].extend([frame_index] * len(keep))
                cols["timestamp_s"].extend([round(float(stamp), 6)] * len(keep))
                cols["label"].extend(names[np.clip(labels[keep], 0, len(names) - 1)].tolist())
                cols["score"].extend(scores[keep].tolist())
                cols["boxes"].append(boxes)
            counts.append(count)
        boxes = np.concatenate(cols.pop("boxes")).astype(np.float32).reshape(-1, 4)
        columns = {**cols, "x1": boxes[:, 0], "y1": boxes[:, 1], "x2": boxes[:, 2],
                   "y2": boxes[:, 3], **self.tail(len(cols["uri"]))}
        table = table_in(columns, DETECTIONS)
        ids = [d.unit.unit_id for d, _ in todo]
        return {uid: UnitRows({"detections": t}) for uid, t in
                split_rows(table, ids, counts).items()}


@dataclass(frozen=True)
class DetectionOptions(AnalysisOptions):
    """Boxes kept per frame, and the detector's internal resize."""

    score_threshold: float = option(0.5, fraction, "lowest box score kept (0 to 1)",
                                    flag="--score-threshold")
    max_boxes: int = option(100, integer(1, 10_000), "most boxes kept per frame",
                            flag="--max-boxes")
    min_size: int = option(0, integer(8, 8192),
                           "the detector's internal resize, shorter side in pixels",
                           shown="the detector's own (320 to 800)")


DETECTIONS_KIND = AnalysisKind(
    name="detections", summary="boxes, labels and scores per sampled frame",
    options=DetectionOptions, common=("model", "weights", "labels", "sample", "size", "actors",
                                      "num_gpus", "num_cpus", "batch"),
    tables={"detections": DETECTIONS}, build=Detector, family="detection",
    # Detectors upscale frames internally (shorter side 800 for the R-CNNs):
    # 64 such frames at once would need gigabytes of activations.
    max_batch=4)
