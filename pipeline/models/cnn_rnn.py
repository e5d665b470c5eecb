"""CNN+RNN clip classifiers: a torchvision frame CNN embeds each frame, a GRU or
LSTM reads the embeddings in order, a Linear layer classifies its final state.

This module imports torch at the top because it defines an nn.Module; import it
only where a model is built.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch
from torch import nn

from pipeline.errors import ConfigError
from pipeline.models.frame_cnn import IMAGENET_MEAN, IMAGENET_STD, build_frame_cnn, last_linear
from pipeline.models.registry import RNN_ARCHS
from pipeline.models.video_cnn import normalized_frames

RNN_BACKBONES = ("resnet18", "mobilenet_v3_small", "efficientnet_b0", "small_cnn")
# All three backbones downsample 32x: below 32 px the last feature map is < 1 px.
_MIN_INPUT_SIZE = 32


@dataclass(frozen=True)
class CnnRnnConfig:
    """Shape of a CnnRnn; `input_size` is the square frame side in pixels and
    `clip_len` the default T frames per clip (the model accepts any T >= 1) and
    `frame_step` the default gap between a clip's frames.

    `pool_grid` is the spatial grid each frame's feature map is averaged to:
    1 pools globally (what the ImageNet heads do), g > 1 keeps g x g cells so
    the RNN sees *where* things are, which motion (direction, trajectories)
    needs: a globally pooled CNN is nearly blind to position. The RNN input
    is then D * g * g wide.
    """

    backbone: str = "mobilenet_v3_small"
    hidden_size: int = 256
    num_layers: int = 1
    bidirectional: bool = False
    dropout: float = 0.0
    input_size: int = 112
    clip_len: int = 8
    frame_step: int = 1
    pool_grid: int = 1

    def __post_init__(self) -> None:
        if self.backbone not in RNN_BACKBONES:
            raise ConfigError(f"unknown backbone {self.backbone!r}; backbones are: "
                              f"{', '.join(RNN_BACKBONES)}")
        _check_int("hidden_size", self.hidden_size, 1)
        _check_int("num_layers", self.num_layers, 1)
        _check_int("input_size", self.input_size, _MIN_INPUT_SIZE)
        _check_int("clip_len", self.clip_len, 1)
        _check_int("frame_step", self.frame_step, 1)
        _check_int("pool_grid", self.pool_grid, 1)
        if not isinstance(self.bidirectional, bool):
            raise ConfigError(f"bidirectional must be true or false, got {self.bidirectional!r}")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) \
                or not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be a number in [0, 1), got {self.dropout!r}")

    def to_dict(self) -> dict[str, Any]:
        """Primitive values only, so a checkpoint holding it loads with weights_only=True."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CnnRnnConfig:
        """Build from `to_dict` output; an unknown key is refused, not ignored (a
        checkpoint's options are checked, never guessed: docs/security.md)."""
        names = [f.name for f in fields(cls)]
        unknown = sorted(str(k) for k in d if k not in names)
        if unknown:
            raise ConfigError(f"unknown CNN+RNN option {unknown[0]!r}; options are: "
                              f"{', '.join(names)}")
        return cls(**d)


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")


def check_rnn_arch(name: str) -> None:
    if name not in RNN_ARCHS:
        raise ConfigError(f"unknown model {name!r}; CNN+RNN models are: {', '.join(RNN_ARCHS)}")


def small_cnn() -> tuple[nn.Module, int]:
    """(backbone, 128): four stride-2 3x3 conv blocks (32-64-96-128 channels,
    BatchNorm, ReLU) and an average pool, [M, 3, S, S] -> [M, 128 * g * g] once
    pooled. About 0.2 M parameters: trains from scratch in minutes on a CPU,
    where the torchvision backbones need pretrained weights or hours."""
    layers: list[nn.Module] = []
    for c_in, c_out in ((3, 32), (32, 64), (64, 96), (96, 128)):
        layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False),
                   nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
    model = nn.Sequential()
    model.add_module("features", nn.Sequential(*layers))
    model.add_module("avgpool", nn.AdaptiveAvgPool2d(1))
    model.add_module("flatten", nn.Flatten())
    return model, 128


def headless_backbone(name: str, pool_grid: int = 1) -> tuple[nn.Module, int]:
    """(backbone, D): `name` (weights=None) mapping [M, 3, S, S] -> [M, D].

    For torchvision models the head is the top-level child holding the last
    Linear (`fc` or `classifier`) and the width is the input of its first
    Linear, i.e. the globally pooled conv features. For mobilenet_v3_small
    that is 576, not the 1024-d hidden layer of its classifier: that layer is
    part of the ImageNet head (with dropout), it would add 0.6M parameters per
    backbone and widen the RNN's input matrices, and stopping at the pooled
    features is the same rule for every backbone. With pool_grid g > 1 the
    pool keeps g x g cells and D is that width times g * g.
    """
    if name == "small_cnn":
        model, width = small_cnn()
    else:
        model = build_frame_cnn(name, num_classes=1)
        head_name = last_linear(model)[0].split(".")[0]
        head = getattr(model, head_name)
        first = head if isinstance(head, nn.Linear) else \
            next(m for m in head.modules() if isinstance(m, nn.Linear))
        setattr(model, head_name, nn.Identity())
        width = int(first.in_features)
    if pool_grid > 1:
        # Every supported backbone pools in a child named `avgpool` and flattens after it.
        model.avgpool = nn.AdaptiveAvgPool2d(pool_grid)
    return model, width * pool_grid * pool_grid


class CnnRnn(nn.Module):
    """Frame CNN -> GRU/LSTM over time -> Linear on the final hidden state.

    forward: float32 [N, T, 3, H, W] (ImageNet-normalised, see `frames_batch`),
    any T >= 1 -> logits float32 [N, num_classes].
    """

    def __init__(self, rnn: str, num_classes: int, config: CnnRnnConfig) -> None:
        super().__init__()
        if rnn not in ("gru", "lstm"):
            raise ConfigError(f"rnn must be 'gru' or 'lstm', got {rnn!r}")
        self.config = config
        self.backbone, width = headless_backbone(config.backbone, config.pool_grid)
        self.is_lstm = rnn == "lstm"
        kind = nn.LSTM if self.is_lstm else nn.GRU
        # nn.GRU/LSTM apply dropout between layers only; with one layer it just warns.
        self.rnn = kind(width, config.hidden_size, num_layers=config.num_layers,
                        batch_first=True, bidirectional=config.bidirectional,
                        dropout=config.dropout if config.num_layers > 1 else 0.0)
        self.directions = 2 if config.bidirectional else 1
        self.classifier = nn.Linear(config.hidden_size * self.directions, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t = x.shape[0], x.shape[1]
        feats = self.backbone(x.flatten(0, 1)).view(n, t, -1)  # [N*T, D] -> [N, T, D]
        _, state = self.rnn(feats)
        # LSTM gives (h_n, c_n). Branch on the attribute, not isinstance(state, tuple):
        # under torch.fx tracing `state` is a Proxy and isinstance would mis-trace.
        hidden = state[0] if self.is_lstm else state
        # h_n [layers*dirs, N, H]: the last layer's final state per direction. The
        # backward direction's final state is at t=0 (it has read the whole clip),
        # unlike output[:, -1], where it has read only the last frame.
        last = hidden[-self.directions:].transpose(0, 1).reshape(n, -1)
        return self.classifier(last)


def build_cnn_rnn(arch: str, num_classes: int,
                  config: CnnRnnConfig | dict[str, Any] | None = None) -> CnnRnn:
    """An untrained CnnRnn ("cnn_gru" or "cnn_lstm"); config defaults to CnnRnnConfig()."""
    check_rnn_arch(arch)
    if config is None:
        config = CnnRnnConfig()
    elif isinstance(config, dict):
        config = CnnRnnConfig.from_dict(config)
    return CnnRnn(arch.removeprefix("cnn_"), num_classes, config)


def rnn_num_classes_in(state_dict: dict[str, Any]) -> int:
    """Number of classes a CnnRnn state_dict was trained for (its classifier's rows)."""
    weight = state_dict.get("classifier.weight")
    if weight is None:
        raise ConfigError("weights do not fit a CNN+RNN model: no 'classifier.weight' tensor")
    return int(weight.shape[0])


def frames_batch(frames: np.ndarray, config: CnnRnnConfig, device: Any) -> torch.Tensor:
    """uint8 RGB clips [N, T, H, W, 3] -> float32 [N, T, 3, S, S] on `device`, S =
    config.input_size: antialiased bilinear resize to SxS (aspect not kept, as on
    decode), scale to [0, 1], ImageNet mean/std."""
    if frames.ndim != 5 or frames.shape[-1] != 3:
        raise ValueError(f"clips must be [N, T, H, W, 3], got shape {frames.shape}")
    n, t = frames.shape[:2]
    side = config.input_size
    flat = normalized_frames(frames.reshape(n * t, *frames.shape[2:]), (side, side),
                             (side, side), IMAGENET_MEAN, IMAGENET_STD, device)
    return flat.view(n, t, 3, side, side)
