"""Resolve an analysis's --model/--weights/--labels into a loaded model.

Fails fast (ConfigError/StorageError) on an unknown model, unreadable or
mismatched weights, or a wrong number of label names. (The driver resolves
versions without torch, and checks the same headers: see
pipeline/analyses/resolve.py.)

A checkpoint's header is a hint, never an order (docs/security.md): its arch
must be built in or the builder the user named, its config only the options
that architecture declares, and the model is first built on torch's "meta"
device (shapes, no memory) and compared with the weights, so nothing is
allocated for real that the weights file does not hold.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from pipeline.config import ModelSpec
from pipeline.errors import ConfigError
from pipeline.models import registry
from pipeline.models.checkpoint import MIB, LoadedWeights, load_weights, read_label_names
from pipeline.models.checkpoint_header import shown
from pipeline.storage_options import StorageOptions

log = logging.getLogger(__name__)

UNTRAINED_VERSION = "untrained"
# A model built from a weights file may need more memory than the file: float16
# weights load into float32 parameters (2x), a custom model may tie weights or
# keep buffers the file does not store. Beyond 4x the file plus 64 MiB, the
# shapes were not backed by stored data (a stride-0 tensor claims any size).
_FILE_FACTOR, _FILE_SLACK = 4, 64 * MIB
# An untrained model has no file to bound it; its class count comes from a
# label file, so a user-named builder is capped (the built-ins need < 0.2 GiB).
_UNTRAINED_MAX_BYTES = 2048 * MIB
_SHOWN_NAMES = 3


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
        source = f"labels {spec.labels_uri!r}" if spec.labels_uri else \
            "the checkpoint's label_names"
        raise ConfigError(f"{len(names)} label names for a model with {n_classes} classes "
                          f"({source}); fix --labels")
    return names


def load_model(spec: ModelSpec, storage: StorageOptions, family: str,
               options: dict[str, Any] | None = None) -> tuple[ModelInfo, Any]:
    """Validate the model flags, load the weights once, and build the model.

    Returns (what the model is, the torch module with weights loaded, on CPU,
    in eval mode). `options` are family build options (detector thresholds)
    chosen for this analysis: they win over what the checkpoint saved.
    Raises ConfigError/StorageError with a message that says what to fix.
    """
    import torch

    options = dict(options or {})
    requested = None if spec.name == "auto" else spec.name
    if not spec.weights_uri:
        return _untrained(spec, storage, family, requested or registry.DEFAULT_ARCH[family],
                          options)
    where = f"weights {spec.weights_uri!r}"
    weights = load_weights(spec.weights_uri, storage)
    arch = _checked_arch(weights, requested, family, where)
    # The analysis's own options (detector thresholds the user set, part of its
    # key) win over what the checkpoint saved: the rows must be what the key says.
    config = {**dict(weights.extra.get("config") or {}), **options}
    with torch.device("meta"):  # frame CNNs read it off a throwaway build: allocate nothing
        n_classes = registry.num_classes_in(family, arch, weights.state_dict)
    budget = (_FILE_FACTOR * weights.size_bytes + _FILE_SLACK,
              f"what a {_size(weights.size_bytes)} file can back (shapes larger than the "
              "data stored?)")
    # Before the labels: a class count the file cannot back must not size a list of names.
    _check_shapes(family, arch, n_classes, config, weights.state_dict, budget, where)
    default = () if registry.is_custom(arch) else registry.default_label_names(family, arch)
    names = _labels(spec, storage, n_classes, weights.label_names, default)
    model = registry.build(family, arch, n_classes, config)
    try:
        model.load_state_dict(weights.state_dict, strict=True)
    except RuntimeError as exc:  # dtype or device troubles the shape check cannot see
        raise ConfigError(f"{where} do not fit {arch}: "
                          f"{str(exc).splitlines()[0][:300]}") from None
    return ModelInfo(arch, names, weights.version, spec.weights_uri, config), model.eval()


def _checked_arch(weights: LoadedWeights, requested: str | None, family: str,
                  where: str) -> str:
    """The architecture to build, refused before any builder is imported unless
    the checkpoint names a built-in one or the builder the user named, and its
    config holds only that architecture's options."""
    config = dict(weights.extra.get("config") or {})
    if weights.arch is not None:
        arch = registry.checkpoint_arch(weights.arch, requested, where)
    else:
        arch = requested or registry.DEFAULT_ARCH[family]
    registry.check_arch(family, arch)
    if registry.is_custom(arch):  # user-named (checked above): importing it is theirs to ask
        registry.check_builder_config(arch, config, where)
    else:
        registry.check_config(arch, config, where)
    return arch


def _untrained(spec: ModelSpec, storage: StorageOptions, family: str, arch: str,
               options: dict[str, Any]) -> tuple[ModelInfo, Any]:
    """`arch` (named by the user or the default) with seeded random weights."""
    import torch

    registry.check_arch(family, arch)
    log.info("no --weights: %s has untrained random weights", arch)
    if registry.is_custom(arch):  # its class count is whatever --labels says
        names = (read_label_names(spec.labels_uri, storage) if spec.labels_uri
                 else ("class_0", "class_1"))
    else:
        default = registry.default_label_names(family, arch)
        names = _labels(spec, storage, len(default), None, default)
    _check_shapes(family, arch, len(names), options, None,
                  (_UNTRAINED_MAX_BYTES, "an untrained model may take"), "no --weights")
    torch.manual_seed(0)  # the same random weights in every actor
    model = registry.build(family, arch, len(names), options)
    return ModelInfo(arch, names, UNTRAINED_VERSION, None, options), model.eval()


def _check_shapes(family: str, arch: str, n_classes: int, config: dict[str, Any],
                  state_dict: dict[str, Any] | None, budget: tuple[int, str],
                  where: str) -> None:
    """Build the model on the meta device (shapes only: no memory, whatever the
    header asks for) and refuse it, before anything is allocated, when its
    tensors differ from `state_dict`'s or need more than `budget` (bytes, and
    what the limit is, for the message)."""
    import torch

    try:
        with torch.device("meta"):
            meta = registry.build(family, arch, n_classes, config)
    except (RuntimeError, NotImplementedError) as exc:  # what meta tensors cannot do
        raise ConfigError(f"{arch} cannot be built on the meta device to check its shapes "
                          f"before allocating it: {str(exc).splitlines()[0][:200]}") from None
    if state_dict is not None:
        _compare(meta.state_dict(), state_dict, arch, where)
    tensors = {id(t): t for t in (*meta.parameters(), *meta.buffers())}.values()
    needed = sum(t.numel() * t.element_size() for t in tensors)
    if needed > budget[0]:
        raise ConfigError(f"{where}: {arch} with {n_classes:,} classes needs "
                          f"{_size(needed)}, over the {_size(budget[0])} of {budget[1]}")


def _size(n_bytes: int) -> str:
    return f"{n_bytes / MIB:,.0f} MiB" if n_bytes >= MIB else f"{n_bytes:,} bytes"


def _compare(expected: dict[str, Any], given: dict[str, Any], arch: str, where: str) -> None:
    """ConfigError naming the first few missing, unexpected and misshapen tensors."""
    missing = [k for k in expected if k not in given]
    unexpected = [shown(k, 60) for k in given if k not in expected]  # names from the file
    misshapen = [f"{k} {list(given[k].shape)} (needs {list(expected[k].shape)})"
                 for k in expected if k in given and given[k].shape != expected[k].shape]
    problems = [f"{what} {_first(names)}" for what, names in (
        ("missing", missing), ("unexpected", unexpected), ("wrong shape", misshapen)) if names]
    if problems:
        raise ConfigError(f"{where} do not fit {arch}: {'; '.join(problems)}")


def _first(names: list[str]) -> str:
    more = len(names) - _SHOWN_NAMES
    return ", ".join(names[:_SHOWN_NAMES]) + (f" (+{more} more)" if more > 0 else "")
