"""Build the Analysis object of a resolved analysis (light: no model loaded)."""

from __future__ import annotations

from pipeline.analyses.base import Analysis
from pipeline.analyses.clip_classifier import ClipClassifier
from pipeline.analyses.detector import Detector
from pipeline.analyses.frame_classifier import FrameClassifier
from pipeline.analyses.resolve import ResolvedAnalysis
from pipeline.analyses.shot_detector import ShotDetector
from pipeline.storage_options import StorageOptions

_MODEL_ANALYSES = {"frame_labels": FrameClassifier, "frame_embeddings": FrameClassifier,
                   "clip_labels": ClipClassifier, "detections": Detector}


def build_analysis(resolved: ResolvedAnalysis, *, storage: StorageOptions,
                   threads: int | None = None, micro_batch: int = 64) -> Analysis:
    """The analysis object; a model analysis loads its model later, in setup()."""
    spec = resolved.spec
    if spec.kind == "shots":
        return ShotDetector(resolved.name, spec)
    cls = _MODEL_ANALYSES[spec.kind]
    batch = spec.resources.batch or min(micro_batch, cls.max_micro_batch)
    return cls(resolved.name, spec, storage=storage, threads=threads, micro_batch=batch)
