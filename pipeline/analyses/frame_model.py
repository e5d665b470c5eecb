"""Resolve --model/--weights/--labels into a loaded model, before any work.

Fails fast (ConfigError/StorageError) on an unknown model, unreadable or
mismatched weights, or a wrong number of label names. `weights_version` gives
the model_version without importing torch, for planning on the driver.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from pipeline.config import ModelSpec
from pipeline.errors import ConfigError
from pipeline.models.checkpoint import content_version, load_weights, read_bytes, read_label_names
from pipeline.models.frame_cnn import (
    build_frame_cnn,
    check_arch,
    imagenet_label_names,
    num_classes_in,
)
from pipeline.storage import StorageOptions

log = logging.getLogger(__name__)

UNTRAINED_VERSION = "untrained"
DEFAULT_ARCH = "mobilenet_v3_small"  # --model auto without a checkpoint naming one


@dataclass(frozen=True)
class FrameModelInfo:
    """Everything an actor needs to rebuild the model: small and picklable."""

    arch: str
    label_names: tuple[str, ...]
    version: str
    weights_uri: str | None


def _labels(spec: ModelSpec, storage: StorageOptions, n_classes: int,
            from_checkpoint: tuple[str, ...] | None) -> tuple[str, ...]:
    if spec.labels_uri:
        names = read_label_names(spec.labels_uri, storage)
    elif from_checkpoint:
        names = from_checkpoint
    elif n_classes == 1000:
        names = imagenet_label_names()
    else:
        names = tuple(f"class_{i}" for i in range(n_classes))
    if len(names) != n_classes:
        raise ConfigError(f"{len(names)} label names for a model with {n_classes} classes; "
                          "fix --labels")
    return names


def weights_version(spec: ModelSpec, storage: StorageOptions) -> str:
    """model_version without importing torch: the weights' content hash."""
    if not spec.weights_uri:
        return UNTRAINED_VERSION
    return content_version(read_bytes(spec.weights_uri, storage, what="weights"))


def load_frame_model(spec: ModelSpec, storage: StorageOptions) -> tuple[FrameModelInfo, Any]:
    """Validate the model flags, load the weights once, and build the model.

    Returns (what the model is, the torch module with weights loaded, on CPU).
    Raises ConfigError/StorageError with a message that says what to fix.
    """
    import torch

    requested = None if spec.name == "auto" else spec.name
    if not spec.weights_uri:
        arch = requested or DEFAULT_ARCH
        check_arch(arch)
        log.info("no --weights: %s has untrained random weights", arch)
        names = _labels(spec, storage, 1000, None)
        torch.manual_seed(0)  # the same random weights in every actor
        return FrameModelInfo(arch, names, UNTRAINED_VERSION, None), build_frame_cnn(arch, 1000)
    weights = load_weights(spec.weights_uri, storage)
    arch = weights.arch or requested or DEFAULT_ARCH
    if weights.arch and requested and requested != weights.arch:
        raise ConfigError(f"--model {spec.name} but the checkpoint holds a {weights.arch}; "
                          "drop --model or pass the matching one")
    check_arch(arch)
    n_classes = num_classes_in(arch, weights.state_dict)
    model = build_frame_cnn(arch, n_classes)
    try:
        model.load_state_dict(weights.state_dict, strict=True)
    except RuntimeError as exc:
        raise ConfigError(f"weights {spec.weights_uri!r} do not fit {arch}: "
                          f"{str(exc).splitlines()[0][:300]}") from None
    names = _labels(spec, storage, n_classes, weights.label_names)
    return FrameModelInfo(arch, names, weights.version, spec.weights_uri), model


def resolve_frame_model(spec: ModelSpec, storage: StorageOptions) -> FrameModelInfo:
    """Validate the model flags and weights; what `load_frame_model` says of them."""
    return load_frame_model(spec, storage)[0]
