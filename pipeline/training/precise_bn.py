"""Precise BatchNorm: after each epoch, recompute every BatchNorm layer's
running statistics with the epoch's final weights, before validation and
before the checkpoint is written.

Why: a BatchNorm layer's running mean and variance are an exponential
average (momentum 0.1) of batch statistics taken while the weights moved.
With a few dozen steps per epoch and a high learning rate they describe the
weights of several steps ago, and eval mode (validation, `vidlake label`)
normalises with them: predictions can collapse onto one class although
train-mode accuracy is high. Recomputing them as a plain average over a few
hundred training frames with the final weights removes the lag (Wu and
Johnson, "Rethinking 'Batch' in BatchNorm", 2021; fvcore's
`update_bn_stats`).

The clips come for free: a worker keeps the last clips of its training pass
(`RecentClips`, augmented exactly as trained on), so recalibrating costs
forward passes only, no decode.

Under DDP each worker recalibrates on its own recent clips, then the workers
average their statistics (`average_across_workers`): the mean is the mean
over all workers' clips exactly; the variance is recombined from each
worker's E[x^2], so it includes the spread between workers' means. Every
worker then validates with the same statistics rank 0 saves.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator

import numpy as np
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

# Frames a worker recalibrates on (clips = this / clip length). BatchNorm
# averages over every pixel of every frame, so a few hundred frames give
# stable statistics; memory is bounded by this many decoded frames.
PRECISE_BN_FRAMES = 512


def bn_layers(module: nn.Module) -> list[_BatchNorm]:
    """The BatchNorm layers (1d/2d/3d) of `module` that keep running statistics."""
    return [m for m in module.modules()
            if isinstance(m, _BatchNorm) and m.track_running_stats]


class RecentClips:
    """The last `capacity` clips that decoded (uint8 [T, H, W, 3] each) of a
    training pass, kept to recalibrate BatchNorm without decoding again."""

    def __init__(self, capacity: int) -> None:
        self.clips: deque[np.ndarray] = deque(maxlen=max(1, capacity))

    @classmethod
    def for_clip_len(cls, clip_len: int) -> RecentClips:
        """Room for PRECISE_BN_FRAMES frames of `clip_len`-frame clips."""
        return cls(-(-PRECISE_BN_FRAMES // max(1, clip_len)))

    def add(self, clips: np.ndarray, ok: np.ndarray) -> None:
        """clips uint8 [N, T, H, W, 3]; ok bool [N] (failed decodes are zero clips)."""
        self.clips.extend(np.array(c) for c, good in zip(clips, ok, strict=True) if good)

    def batches(self, batch_size: int) -> Iterator[np.ndarray]:
        """uint8 [B, T, H, W, 3] batches of equal size B (at most `batch_size`):
        the cumulative average weighs every batch the same, so no short last one."""
        kept = list(self.clips)
        if not kept:
            return
        size = min(batch_size, len(kept))
        for start in range(0, len(kept) - size + 1, size):
            yield np.stack(kept[start:start + size])

    def clear(self) -> None:
        self.clips.clear()


def recalibrate_bn(module: nn.Module, inputs: Iterable[torch.Tensor]) -> int:
    """Reset every BatchNorm layer's running statistics and recompute them as
    the plain average over the batches of `inputs` (model inputs, the shape
    `module` takes), in train mode, without gradients. Returns the number of
    batches seen; with none, the statistics are left as they were."""
    layers = bn_layers(module)
    if not layers:
        return 0
    batches = iter(inputs)
    first = next(batches, None)
    if first is None:
        return 0
    momenta = [layer.momentum for layer in layers]
    was_training = module.training
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None  # None: a cumulative average over the batches, not exponential
    module.train()
    seen = 0
    with torch.no_grad():
        for x in (first, *batches):
            module(x)
            seen += 1
    for layer, momentum in zip(layers, momenta, strict=True):
        layer.momentum = momentum
    module.train(was_training)
    return seen


def average_across_workers(module: nn.Module) -> None:
    """Average the BatchNorm statistics over the DDP workers (each recalibrated
    on the same number of batches): mean over workers of the means, and the
    variance from the mean over workers of E[x^2] = var + mean^2. Nothing to
    do outside a process group."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return
    world = dist.get_world_size()
    for layer in bn_layers(module):
        mean, var = layer.running_mean, layer.running_var
        if mean is None or var is None:
            continue
        stats = torch.cat([mean, var + mean * mean]).double()
        dist.all_reduce(stats)
        stats /= world
        new_mean, square = stats.split(mean.numel())
        mean.copy_(new_mean)
        var.copy_((square - new_mean * new_mean).clamp(min=0))
