"""--init-weights: start training from pretrained weights, matched tensor by tensor.

The weights are a file the user downloaded or trained (never fetched here),
read as `vidlake label --weights` reads one (pipeline.models.checkpoint:
weights_only, size caps): a torchvision state_dict (Kinetics 3D CNNs,
ImageNet frame CNNs), a bare frame CNN state_dict for the CNN+RNN's
backbone, or a vidlake model.pt. Their names are matched to the model's:
as they are, or under the model's `backbone.` (CNN+RNN) or `frame_model.`
(frame CNN) prefix, whichever matches most; a `module.` prefix (a
DistributedDataParallel save) is dropped first.

- The classifier head is new, sized for the new label set, unless the file
  is a vidlake checkpoint with exactly the same label names.
- Every backbone tensor must be in the file with its shape: a file of
  another architecture is refused (ConfigError), not half-loaded.
- Tensors the model lacks (an ImageNet `fc`, a Kinetics head) are ignored,
  and reported as such; so are the model's tensors the file lacks (a new RNN).
- Every floating value must be finite.

A vidlake model.pt of the same architecture also gives the input size and
clip shape the user did not choose (`inherited_shape`), so `vidlake label
--weights` of the fine-tuned model preprocesses as the pretrained one did.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from pipeline.errors import ConfigError
from pipeline.models.checkpoint import LoadedWeights
from pipeline.models.checkpoint_header import shown
from pipeline.training.finetune import FineTune, FineTuneFlags
from pipeline.training.model_shape import LARGEST, ModelShape

_PREFIXES = ("", "backbone.", "frame_model.")
# BatchNorm's step counter: torch < 0.4 did not save it, and nothing reads it
# unless momentum is None; a file without it still covers the backbone.
_OPTIONAL = "num_batches_tracked"


@dataclass(frozen=True)
class InitReport:
    """What --init-weights did, tensor names per outcome."""

    uri: str
    version: str  # short sha256 of the file, as label's model_version
    loaded: tuple[str, ...]
    new: tuple[str, ...]  # the model's tensors the file does not give (the head among them)
    ignored: tuple[str, ...]  # the file's tensors not loaded, by the file's names
    head_kept: bool

    def line(self) -> str:
        head = "kept (same labels)" if self.head_kept else "new for these labels"
        return (f"--init-weights {self.uri} ({self.version}): loaded {len(self.loaded)} "
                f"tensors, new {len(self.new)}{_few(self.new)}, ignored "
                f"{len(self.ignored)}{_few(self.ignored)}; classifier head {head}")

    def record(self) -> dict[str, Any]:
        """Plain values for checkpoints and model.pt."""
        return {"version": self.version, "loaded": len(self.loaded), "new": len(self.new),
                "ignored": len(self.ignored), "head_kept": self.head_kept}


def _few(names: tuple[str, ...], count: int = 3) -> str:
    if not names:
        return ""
    more = f", +{len(names) - count}" if len(names) > count else ""
    return f" ({', '.join(names[:count])}{more})"


@dataclass(frozen=True)
class Parts:
    """Where a model's pretrained part ends: names starting with `head` are
    the classifier; `backbone` is the prefix of what a pretrained file must
    cover ('' = everything but the head)."""

    head: str
    backbone: str

    def in_head(self, name: str) -> bool:
        return name.startswith(self.head)

    def in_backbone(self, name: str) -> bool:
        return name.startswith(self.backbone) and not self.in_head(name)


def _renamed(state: dict[str, Any], targets: dict[str, Any]) -> dict[str, str]:
    """{model's name: file's name} for every tensor of `state`, under the
    prefix that puts the most of them in `targets`."""
    strip = "module." if state and all(k.startswith("module.") for k in state) else ""
    names = {k.removeprefix(strip): k for k in state}
    best = max(_PREFIXES, key=lambda p: sum(p + k in targets for k in names))
    return {best + k: original for k, original in names.items()}


def _check_finite(state: dict[str, Any], where: str) -> None:
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ConfigError(f"{where}: tensor {shown(name)} holds NaN or infinite values")


def match_weights(module: nn.Module, parts: Parts, weights: LoadedWeights, uri: str,
                  label_names: tuple[str, ...]) -> tuple[dict[str, Any], InitReport]:
    """(the tensors to load into `module`, the report); ConfigError when the
    file does not fit the model's backbone."""
    where = f"--init-weights {uri!r}"
    targets = module.state_dict()
    renamed = _renamed(weights.state_dict, targets)
    state = {k: weights.state_dict[original] for k, original in renamed.items()}
    keep_head = weights.label_names is not None and tuple(weights.label_names) == label_names
    wrong = [f"{k} {tuple(v.shape)} (model: {tuple(targets[k].shape)})" for k, v in state.items()
             if k in targets and tuple(v.shape) != tuple(targets[k].shape)
             and (keep_head or not parts.in_head(k))]
    if wrong:
        raise ConfigError(f"{where} does not fit this model: {len(wrong)} tensors differ in "
                          f"shape, first {shown(wrong[0], 200)}")
    load = {k: v for k, v in state.items()
            if k in targets and (keep_head or not parts.in_head(k))}
    missing = [k for k in targets if parts.in_backbone(k) and k not in load
               and not k.endswith(_OPTIONAL)]
    if missing:
        raise ConfigError(f"{where} lacks {len(missing)} of the backbone's "
                          f"{sum(parts.in_backbone(k) for k in targets)} tensors (first "
                          f"{shown(missing[0])}): weights of another architecture?")
    _check_finite(load, where)
    report = InitReport(uri, weights.version, tuple(load),
                        tuple(k for k in targets if k not in load),
                        tuple(renamed[k] for k in state if k not in load),
                        any(parts.in_head(k) for k in load))
    return load, report


def recorded_shape(family: str, config: dict[str, Any]) -> dict[str, Any]:
    """ModelShape fields a vidlake model.pt's `config` records (checked plain
    values: pipeline.models.checkpoint_header), by family."""
    if family == "rnn":
        rnn = config.get("cnn_rnn") or {}
        found = {"size": rnn.get("input_size"), "clip_len": rnn.get("clip_len"),
                 "frame_step": rnn.get("frame_step"), "backbone": rnn.get("backbone"),
                 "hidden_size": rnn.get("hidden_size"), "pool_grid": rnn.get("pool_grid")}
    elif family == "video":
        clip = config.get("clip") or {}
        crop = clip.get("crop") or [None]
        found = {"size": crop[0], "clip_len": clip.get("clip_len"),
                 "frame_step": clip.get("frame_step")}
    else:
        found = {"size": config.get("input_size")}
    return {k: v for k, v in found.items() if v is not None}


def inherited_shape(shape: ModelShape, defaulted: tuple[str, ...],
                    weights: LoadedWeights) -> ModelShape:
    """`shape`, with the fields the user left to default (`defaulted`) taken
    from a vidlake model.pt of the same architecture: the fine-tune then sees
    frames as the pretrained model did (input size, clip, backbone)."""
    if weights.arch != shape.arch:
        return shape
    recorded = recorded_shape(shape.family, weights.extra.get("config") or {})
    taken = {k: v for k, v in recorded.items() if k in defaulted}
    for name, value in taken.items():
        # the file's values are hints: no larger than the flags allow
        if isinstance(value, int) and value > LARGEST[name]:
            raise ConfigError(f"--init-weights model.pt records {name} {value}, over the "
                              f"{LARGEST[name]} `vidlake train` accepts: set it with its flag")
    return dataclasses.replace(shape, **taken)


@dataclass(frozen=True)
class PretrainedStart:
    """The initial weights of a run from --init-weights."""

    state: dict[str, Any]  # the whole module's state_dict, the file's tensors in place
    finetune: FineTune
    report: InitReport


def pretrained_start(trainable: Any, label_names: tuple[str, ...], weights: LoadedWeights,
                     flags: FineTuneFlags, uri: str) -> PretrainedStart:
    """Load the matching tensors of `weights` into `trainable.module` (a
    Trainable sized for `label_names`) and say which parameters are
    pretrained and which the freeze covers."""
    parts: Parts = trainable.parts()
    load, report = match_weights(trainable.module, parts, weights, uri, label_names)
    trainable.module.load_state_dict(load, strict=False)
    params = [name for name, _ in trainable.module.named_parameters()]
    finetune = FineTune(flags, weights.version, tuple(n for n in params if n in load),
                        tuple(n for n in params if parts.in_backbone(n)))
    return PretrainedStart(trainable.module.state_dict(), finetune, report)
