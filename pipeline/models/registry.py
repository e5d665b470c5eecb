"""Every architecture vidlake can run, by family, without importing torch.

A family is what a model does to video: `frame` (a label per frame), `clip`
(a label per clip of T frames: 3D CNNs and the CNN+RNN family) and
`detection` (boxes per frame). A checkpoint that names its architecture
therefore implies its analysis (`kind_for_arch`). An architecture may also
be a `package.module:function` builder, `function(num_classes, **config)`
returning a torch module, for models vidlake does not ship.
"""

from __future__ import annotations

import importlib
from typing import Any

from pipeline.errors import ConfigError
from pipeline.models.detectors import DETECTORS
from pipeline.models.frame_cnn import FRAME_CNNS
from pipeline.models.video_cnn import VIDEO_CNNS

# The CNN+RNN family (pipeline.models.cnn_rnn, which imports torch at once).
RNN_ARCHS = ("cnn_gru", "cnn_lstm")
FAMILIES: dict[str, tuple[str, ...]] = {
    "frame": FRAME_CNNS,
    "clip": VIDEO_CNNS + RNN_ARCHS,
    "detection": DETECTORS,
}
DEFAULT_ARCH = {"frame": "mobilenet_v3_small", "clip": "r3d_18",
                "detection": "fasterrcnn_mobilenet_v3_large_fpn"}
# Documented preprocessing of the clip models, without importing torchvision:
# (resize width, resize height, clip length). torchvision's transforms resize
# to 128x171 (r3d/mc3/r2plus1d) or 256 (s3d, mvit) before the centre crop;
# clip lengths are the ones their accuracies are documented with.
CLIP_DEFAULTS = {"r3d_18": (171, 128, 16), "mc3_18": (171, 128, 16),
                 "r2plus1d_18": (171, 128, 16), "s3d": (256, 256, 128),
                 "mvit_v2_s": (256, 256, 16)}
FAMILY_OF_KIND = {"frame_labels": "frame", "frame_embeddings": "frame",
                  "clip_labels": "clip", "detections": "detection"}
KIND_OF_FAMILY = {"frame": "frame_labels", "clip": "clip_labels", "detection": "detections"}


def is_custom(arch: str) -> bool:
    return ":" in arch


def family_of(arch: str) -> str | None:
    """The family of a shipped architecture; None for unknown or custom ones."""
    return next((f for f, names in FAMILIES.items() if arch in names), None)


def kind_for_arch(arch: str) -> str | None:
    """The analysis a checkpoint of `arch` implies (frame_labels, clip_labels, detections)."""
    family = family_of(arch)
    return KIND_OF_FAMILY[family] if family else None


def check_arch(family: str, arch: str) -> None:
    """ConfigError naming the choices unless `arch` belongs to `family`."""
    if is_custom(arch) or arch in FAMILIES[family]:
        return
    other = family_of(arch)
    hint = f" ({arch} is a {other} model: use --analysis {KIND_OF_FAMILY[other]})" if other else ""
    raise ConfigError(f"unknown {family} model {arch!r}{hint}; choose from "
                      f"{', '.join(FAMILIES[family])}")


def _custom_builder(arch: str) -> Any:
    module, _, name = arch.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"model builder {arch!r} cannot be imported: {exc}") from None


def build(family: str, arch: str, num_classes: int, config: dict[str, Any]) -> Any:
    """An untrained torch module of `arch` (weights=None: nothing is downloaded).

    `config` holds family options: the CNN+RNN shape, detector thresholds."""
    if is_custom(arch):
        return _custom_builder(arch)(num_classes, **config)
    if family == "frame":
        from pipeline.models.frame_cnn import build_frame_cnn

        return build_frame_cnn(arch, num_classes)
    if family == "clip":
        if arch in RNN_ARCHS:
            from pipeline.models.cnn_rnn import build_cnn_rnn

            return build_cnn_rnn(arch, num_classes, config.get("cnn_rnn"))
        from pipeline.models.video_cnn import build_video_cnn

        return build_video_cnn(arch, num_classes)
    from pipeline.models.detectors import build_detector

    return build_detector(arch, num_classes, score_threshold=config["score_threshold"],
                          max_boxes=config["max_boxes"], min_size=config.get("min_size") or None)


def num_classes_in(family: str, arch: str, state_dict: dict[str, Any]) -> int:
    """How many classes `state_dict` was trained for."""
    if is_custom(arch):
        return int(state_dict.get("num_classes", 0)) or _last_weight_rows(state_dict)
    if family == "frame":
        from pipeline.models.frame_cnn import num_classes_in as frame_classes

        return frame_classes(arch, state_dict)
    if family == "clip":
        if arch in RNN_ARCHS:
            from pipeline.models.cnn_rnn import rnn_num_classes_in

            return rnn_num_classes_in(state_dict)
        from pipeline.models.video_cnn import video_num_classes_in

        return video_num_classes_in(arch, state_dict)
    from pipeline.models.detectors import detector_num_classes_in

    return detector_num_classes_in(arch, state_dict)


def _last_weight_rows(state_dict: dict[str, Any]) -> int:
    weights = [v for k, v in state_dict.items() if k.endswith("weight") and v.ndim == 2]
    if not weights:
        raise ConfigError("cannot tell the number of classes of a custom model's weights")
    return int(weights[-1].shape[0])


def default_label_names(family: str, arch: str) -> tuple[str, ...]:
    """Label names of the dataset a family's models are usually trained on
    (shipped inside torchvision; no download): an untrained model uses them."""
    if family == "frame":
        from pipeline.models.frame_cnn import imagenet_label_names

        return imagenet_label_names()
    if family == "clip":
        from pipeline.models.video_cnn import kinetics400_label_names

        return kinetics400_label_names()
    from pipeline.models.detectors import coco_label_names

    return coco_label_names()
