"""Resolve an analysis's --model/--weights/--labels into a loaded model.

Fails fast (ConfigError/StorageError) on an unknown model, unreadable or
mismatched weights, or a wrong number of label names. (The driver resolves
versions without torch: see pipeline/analyses/resolve.py.)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from pipeline.config import ModelSpec
from pipeline.errors import ConfigError
from pipeline.models import registry
from pipeline.models.checkpoint import load_weights, read_label_names
from pipeline.storage import StorageOptions

log = logging.getLogger(__name__)

UNTRAINED_VERSION = "untrained"


@dataclass(frozen=True)
class ModelInfo:
    """Everything an actor needs to rebuild the model: small and picklable.

    `config` holds the architecture's options saved in the checkpoint (the
    CNN+RNN shape and input size, for instance)."""

    arch: str
    label_names: tuple[str, ...]
    version: str
    weights_uri: str | None
    config: dict[str, Any] = field(default_factory=dict)


def _labels(spec: ModelSpec, storage: StorageOptions, n_classes: int,
            from_checkpoint: tuple[str, ...] | None, default: tuple[str, ...]) -> tuple[str, ...]:
    if spec.labels_uri:
        names = read_label_names(spec.labels_uri, storage)
    elif from_checkpoint:
        names = from_checkpoint
    elif len(default) == n_classes:
        names = default
    else:
        names = tuple(f"class_{i}" for i in range(n_classes))
    if len(names) != n_classes:
        raise ConfigError(f"{len(names)} label names for a model with {n_classes} classes; "
                          "fix --labels")
    return names


def load_model(spec: ModelSpec, storage: StorageOptions, family: str,
               options: dict[str, Any] | None = None) -> tuple[ModelInfo, Any]:
    """Validate the model flags, load the weights once, and build the model.

    Returns (what the model is, the torch module with weights loaded, on CPU,
    in eval mode). `options` are family build options (detector thresholds)
    that the checkpoint's own config does not fix.
    Raises ConfigError/StorageError with a message that says what to fix.
    """
    import torch

    options = dict(options or {})
    requested = None if spec.name == "auto" else spec.name
    if not spec.weights_uri:
        arch = requested or registry.DEFAULT_ARCH[family]
        registry.check_arch(family, arch)
        log.info("no --weights: %s has untrained random weights", arch)
        if registry.is_custom(arch):  # its class count is whatever --labels says
            names = (read_label_names(spec.labels_uri, storage) if spec.labels_uri
                     else ("class_0", "class_1"))
        else:
            default = registry.default_label_names(family, arch)
            names = _labels(spec, storage, len(default), None, default)
        torch.manual_seed(0)  # the same random weights in every actor
        model = registry.build(family, arch, len(names), options)
        return ModelInfo(arch, names, UNTRAINED_VERSION, None, options), model.eval()
    weights = load_weights(spec.weights_uri, storage)
    arch = weights.arch or requested or registry.DEFAULT_ARCH[family]
    if weights.arch and requested and requested != weights.arch:
        raise ConfigError(f"--model {spec.name} but the checkpoint holds a {weights.arch}; "
                          "drop --model or pass the matching one")
    registry.check_arch(family, arch)
    config = {**options, **dict(weights.extra.get("config") or {})}
    n_classes = registry.num_classes_in(family, arch, weights.state_dict)
    model = registry.build(family, arch, n_classes, config)
    try:
        model.load_state_dict(weights.state_dict, strict=True)
    except RuntimeError as exc:
        raise ConfigError(f"weights {spec.weights_uri!r} do not fit {arch}: "
                          f"{str(exc).splitlines()[0][:300]}") from None
    default = () if registry.is_custom(arch) else registry.default_label_names(family, arch)
    names = _labels(spec, storage, n_classes, weights.label_names, default)
    return ModelInfo(arch, names, weights.version, spec.weights_uri, config), model.eval()
