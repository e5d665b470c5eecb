"""Every architecture vidlake can run, by family, without importing torch.

A family is what a model does to video: `frame` (a label per frame), `clip`
(a label per clip of T frames: 3D CNNs and the CNN+RNN family) and
`detection` (boxes per frame). A checkpoint that names its architecture
therefore implies its analysis (`kind_for_arch`). An architecture may also
be a `package.module:function` builder, `function(num_classes, **config)`
returning a torch module, for models vidlake does not ship: it runs only when
the user names it (--model, `model:` in their pipeline file), never because a
checkpoint does (`checkpoint_arch`). A checkpoint's `config` holds only the
options its architecture declares (`check_config`; docs/security.md).
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from pipeline.config import SampleSpec
from pipeline.errors import ConfigError
from pipeline.models.checkpoint_header import Option, check_options, shown
from pipeline.models.detectors import DETECTORS
from pipeline.models.frame_cnn import FRAME_CNNS
from pipeline.models.video_cnn import SMALL_3D, SMALL_3D_PREPROCESS, VIDEO_CNNS

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
# clip lengths are the ones their accuracies are documented with. small_3d's
# are vidlake's own (what `vidlake train` gives it by default).
CLIP_DEFAULTS = {"r3d_18": (171, 128, 16), "mc3_18": (171, 128, 16),
                 "r2plus1d_18": (171, 128, 16), "s3d": (256, 256, 128),
                 "mvit_v2_s": (256, 256, 16),
                 SMALL_3D: (SMALL_3D_PREPROCESS.resize[-1], SMALL_3D_PREPROCESS.resize[0],
                            SMALL_3D_PREPROCESS.clip_len)}
BUILT_IN = frozenset(FRAME_CNNS + VIDEO_CNNS + RNN_ARCHS + DETECTORS)
# pipeline.models.cnn_rnn.RNN_BACKBONES, here without torch (a test keeps them equal).
CNN_RNN_BACKBONES = ("resnet18", "mobilenet_v3_small", "efficientnet_b0", "small_cnn")

# What a checkpoint's `config` may hold, per built-in architecture: the keys
# `vidlake train` writes (pipeline/training/trainable.py: export) and the
# loaders read, in the ranges those readers can use. Sides are pixels (as
# --size), clip lengths and steps are frames (a clip is decoded whole).
_SIDE = Option("int", 8, 8192)
_SAMPLE = Option("str")  # a --sample text, parsed by SampleSpec (data, never code)
_FRAMES = Option("int", 1, 1024)
CNN_RNN_OPTIONS = {  # pipeline.models.cnn_rnn.CnnRnnConfig's fields (a test keeps them equal)
    "backbone": Option("str", choices=CNN_RNN_BACKBONES),
    "hidden_size": Option("int", 1, 65536), "num_layers": Option("int", 1, 16),
    "bidirectional": Option("bool"), "dropout": Option("float", 0.0, 0.99),
    "input_size": Option("int", 32, 8192),  # the backbones downsample 32x
    "clip_len": _FRAMES, "frame_step": _FRAMES, "pool_grid": Option("int", 1, 32),
}
CLIP_OPTIONS = {  # resize and crop are (height, width), as in ClipPreprocess
    "clip_len": Option("int", 1, 1024, required=True), "frame_step": _FRAMES,
    "resize": Option("pair", 8, 8192, required=True),
    "crop": Option("pair", 8, 8192, required=True),
}
DETECTOR_OPTIONS = {"score_threshold": Option("float", 0.0, 1.0),
                    "max_boxes": Option("int", 1, 10000), "min_size": Option("int", 0, 8192)}
# Options an analysis passes to `build` for its family (Detector.build_options),
# whatever the model; a custom builder gets those its signature takes.
FAMILY_BUILD_OPTIONS = {"detection": DETECTOR_OPTIONS}
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


def checkpoint_arch(arch: str, requested: str | None, where: str) -> str:
    """`arch` as the checkpoint at `where` names it, if vidlake may build it: a
    built-in architecture, or exactly the builder the user named (`requested`).
    A checkpoint never chooses code to run: ConfigError for anything else."""
    if arch not in BUILT_IN and arch != requested:
        raise ConfigError(f"{where}: arch {shown(arch)} is not a built-in model; a "
                          "module:function builder runs only when you name it yourself "
                          "(--model), never because a checkpoint does")
    if requested is not None and arch != requested:
        raise ConfigError(f"{where}: arch {shown(arch)} but --model {shown(requested)}; "
                          "drop --model or pass the matching one")
    return arch


def config_options(arch: str) -> dict[str, Option] | None:
    """The options a checkpoint of built-in `arch` may hold in its `config`;
    None for a custom builder (its signature decides: `check_builder_config`)."""
    if arch in RNN_ARCHS:
        return {"cnn_rnn": Option("section", fields=CNN_RNN_OPTIONS), "sample": _SAMPLE}
    if arch in VIDEO_CNNS:
        return {"clip": Option("section", fields=CLIP_OPTIONS), "sample": _SAMPLE}
    if arch in FRAME_CNNS:
        return {"input_size": _SIDE}
    if arch in DETECTORS:
        return DETECTOR_OPTIONS
    return None


def check_config(arch: str, config: dict[str, Any], where: str) -> None:
    """ConfigError naming `where` and the field unless the (plain) `config` of a
    checkpoint of `arch` holds only options `arch` declares, in range. Custom
    builders are checked where they are imported (`check_builder_config`)."""
    options = config_options(arch)
    if options is None:
        return
    check_options(config, options, "config", where)
    if "sample" in config:  # the frames a clip model was trained on (vidlake train --sample)
        try:
            SampleSpec.parse(config["sample"])
        except ConfigError as exc:
            raise ConfigError(f"{where}: config.sample: {exc}") from None
    clip = config.get("clip")
    if clip and any(c > r for c, r in zip(clip["crop"], clip["resize"], strict=True)):
        raise ConfigError(f"{where}: config.clip.crop {shown(clip['crop'])} is larger than "
                          f"config.clip.resize {shown(clip['resize'])}")


def builder_keywords(arch: str) -> frozenset[str] | None:
    """The keyword options the user-named builder `arch` declares (every
    parameter after the class count); None when it takes **kwargs (any)."""
    try:
        parameters = list(inspect.signature(_custom_builder(arch)).parameters.values())
    except (TypeError, ValueError) as exc:  # not a callable, or no readable signature
        raise ConfigError(f"model builder {arch!r} has no readable signature: {exc}") from None
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if not parameters or parameters[0].kind not in positional:
        raise ConfigError(f"model builder {arch!r} must take the class count first")
    if any(p.kind == inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return frozenset(p.name for p in parameters[1:] if p.kind in (
        inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY))


def check_builder_config(arch: str, config: dict[str, Any], where: str) -> None:
    """ConfigError naming `where` and the field for a `config` key the user-named
    builder `arch` does not declare (imports the builder's module)."""
    keywords = builder_keywords(arch)
    unknown = sorted(set(config) - keywords) if keywords is not None else []
    if unknown:
        raise ConfigError(f"{where}: config.{unknown[0]} is not a keyword parameter of "
                          f"{arch} (it takes: {', '.join(sorted(keywords or ())) or 'none'})")


def _custom_config(family: str, arch: str, config: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments for the user-named builder `arch`: the family's build
    options (detector thresholds, which every detection analysis passes) only
    where its signature takes them, so a builder without them still loads; every
    other key (the checkpoint's config, already held to the signature by
    `check_builder_config`) as is."""
    keywords = builder_keywords(arch)
    if keywords is None:  # **kwargs takes everything
        return dict(config)
    family_options = FAMILY_BUILD_OPTIONS.get(family, {})
    return {k: v for k, v in config.items() if k in keywords or k not in family_options}


def _custom_builder(arch: str) -> Any:
    module, _, name = arch.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"model builder {arch!r} cannot be imported: {exc}") from None


def build(family: str, arch: str, num_classes: int, config: dict[str, Any]) -> Any:
    """An untrained torch module of `arch` (weights=None: nothing is downloaded).

    `config` holds family options: the CNN+RNN shape, detector thresholds; a
    user-named builder gets the detector thresholds only if it takes them."""
    if is_custom(arch):
        return _custom_builder(arch)(num_classes, **_custom_config(family, arch, config))
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
        return _custom_num_classes(state_dict)
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


def _custom_num_classes(state_dict: dict[str, Any]) -> int:
    """A "num_classes" entry (a one-element tensor), else the last 2-D weight's rows."""
    count = state_dict.get("num_classes")
    if count is None:
        return _last_weight_rows(state_dict)
    if count.numel() != 1 or count.is_floating_point() or int(count) < 1:
        raise ConfigError("a custom model's 'num_classes' entry must hold one positive integer")
    return int(count)


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
