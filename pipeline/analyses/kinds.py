"""The analyses vidlake knows: adding one is a module and a line here."""

from __future__ import annotations

from pipeline.analyses.clip_classifier import CLIP_LABELS_KIND
from pipeline.analyses.detector import DETECTIONS_KIND
from pipeline.analyses.frame_classifier import FRAME_EMBEDDINGS_KIND, FRAME_LABELS_KIND
from pipeline.analyses.kind import AnalysisKind
from pipeline.analyses.shot_detector import SHOTS_KIND
from pipeline.analyses.shot_transnet import SHOTS_TRANSNETV2_KIND
from pipeline.errors import ConfigError

KINDS: dict[str, AnalysisKind] = {k.name: k for k in (
    FRAME_LABELS_KIND,
    FRAME_EMBEDDINGS_KIND,
    CLIP_LABELS_KIND,
    DETECTIONS_KIND,
    SHOTS_KIND,
    SHOTS_TRANSNETV2_KIND,
)}


def kind_named(name: str, where: str = "--analysis") -> AnalysisKind:
    """The kind called `name`; ConfigError listing the kinds when there is none."""
    if name not in KINDS:
        raise ConfigError(f"{where}: unknown analysis {name!r}; choose from {', '.join(KINDS)}")
    return KINDS[name]
