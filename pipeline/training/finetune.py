"""How a run started from --init-weights trains: a lower learning rate for the
pretrained layers, and an optionally frozen backbone (docs/usage.md).

A frozen parameter takes no gradient (requires_grad off), so AdamW neither
moves nor decays it and backward stops at the backbone's output; BatchNorm
statistics still follow the new data (and precise BN recomputes them), which
is what a backbone moved to new footage needs. Unfreezing flips it back at
the start of an epoch; the worker then re-wraps the model for DDP, which
registers only parameters that take gradients.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline.errors import ConfigError

FREEZE_MODES = ("none", "backbone")
DEFAULT_BACKBONE_LR_SCALE = 0.1
# --lr's default with --init-weights (new layers; the pretrained ones get
# 0.1 of it). From scratch the default is 2e-3 (job.Optimization); a new head
# on pretrained features needs larger steps: fine-tuning the demo's CNN+GRU
# to a related task reached validation top-1 0.95 in 2 epochs at 1e-2 and
# 0.65 after 6 at 2e-3 (docs/design.md#training).
FINETUNE_LR = 1e-2


@dataclass(frozen=True)
class FineTuneFlags:
    """What the user asked for, checked against each other (`check`)."""

    init_weights: str | None = None
    freeze: str = "none"
    unfreeze_after: int = 0  # epochs; 0: a frozen backbone stays frozen
    backbone_lr_scale: float | None = None  # None: not given

    def check(self, epochs: int) -> None:
        """ConfigError for a flag that would have no effect (never ignored)."""
        if self.freeze not in FREEZE_MODES:
            raise ConfigError(f"--freeze must be one of {', '.join(FREEZE_MODES)}, "
                              f"got {self.freeze!r}")
        if self.init_weights is None:
            for given, flag in ((self.freeze != "none", "--freeze backbone"),
                                (self.backbone_lr_scale is not None, "--backbone-lr-scale"),
                                (self.unfreeze_after > 0, "--unfreeze-after")):
                if given:
                    raise ConfigError(f"{flag} needs --init-weights: without pretrained "
                                      "weights there is no pretrained backbone")
        if self.unfreeze_after > 0 and self.freeze != "backbone":
            raise ConfigError("--unfreeze-after needs --freeze backbone")
        if self.unfreeze_after >= epochs:
            raise ConfigError(f"--unfreeze-after {self.unfreeze_after} is not before the last "
                              f"of {epochs} epochs: the backbone would never train (drop "
                              "--unfreeze-after to keep it frozen)")

    @property
    def lr_scale(self) -> float:
        scale = self.backbone_lr_scale
        return DEFAULT_BACKBONE_LR_SCALE if scale is None else scale


@dataclass(frozen=True)
class FineTune:
    """A run from pretrained weights, as the workers apply it: parameter names
    loaded from the file (trained at lr * lr_scale) and those the freeze
    covers (the backbone)."""

    flags: FineTuneFlags
    version: str  # the weights file's short sha256
    pretrained: tuple[str, ...]
    backbone: tuple[str, ...]

    def frozen_in(self, epoch: int) -> bool:
        """Whether the backbone is frozen in 0-based `epoch`."""
        flags = self.flags
        return flags.freeze == "backbone" and (flags.unfreeze_after == 0
                                               or epoch < flags.unfreeze_after)

    def record(self) -> dict[str, Any]:
        """What a resumed run must repeat (plain values, kept in checkpoints)."""
        return {"init_weights": self.version, "freeze": self.flags.freeze,
                "unfreeze_after": self.flags.unfreeze_after,
                "backbone_lr_scale": self.flags.lr_scale}


def param_groups(module: Any, lr: float, finetune: FineTune | None) -> list[dict[str, Any]]:
    """AdamW's parameter groups: [new layers at lr] (all of them without
    --init-weights), then [pretrained layers at lr * scale]. Either may be
    empty (a model.pt with the same labels leaves no new layer)."""
    params = list(module.named_parameters())
    if finetune is None:
        return [{"params": [p for _, p in params], "lr": lr}]
    pretrained = set(finetune.pretrained)
    return [{"params": [p for n, p in params if n not in pretrained], "lr": lr},
            {"params": [p for n, p in params if n in pretrained],
             "lr": lr * finetune.flags.lr_scale}]


def set_frozen(module: Any, names: tuple[str, ...], frozen: bool) -> bool:
    """Turn gradients off (frozen) or on for the parameters `names`; returns
    whether anything changed."""
    chosen, changed = set(names), False
    for name, param in module.named_parameters():
        if name in chosen and param.requires_grad == frozen:
            param.requires_grad_(not frozen)
            changed = True
    return changed
