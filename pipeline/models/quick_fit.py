"""Fit a frame CNN on labelled frames in seconds (the demo's model).

Uses the same preprocessing as FrameClassifier (uint8 RGB -> ImageNet
normalisation), so weights fitted here label correctly through `vidlake label`.
A later training job (Ray Train) replaces this for real models.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.models.frame_cnn import IMAGENET_MEAN, IMAGENET_STD, build_frame_cnn


def normalise(frames: Any) -> Any:
    """uint8 tensor [N, H, W, 3] -> float tensor [N, 3, H, W], ImageNet-normalised."""
    import torch

    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255
    return (frames.permute(0, 3, 1, 2).float() - mean) / std


def fit_frame_classifier(arch: str, frames: np.ndarray, labels: np.ndarray, *,
                         num_classes: int, steps: int = 150, batch: int = 32,
                         seed: int = 0) -> dict[str, Any]:
    """Train `arch` from scratch on frames uint8 [N, H, W, 3] with int labels [N];
    returns the state_dict. Deterministic for a given seed on CPU."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = build_frame_cnn(arch, num_classes)
    optimiser = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    x_all = torch.from_numpy(frames)
    y_all = torch.from_numpy(labels.astype(np.int64))
    model.train()
    for _ in range(steps):
        pick = torch.from_numpy(rng.choice(len(frames), size=min(batch, len(frames)),
                                           replace=False))
        loss = torch.nn.functional.cross_entropy(model(normalise(x_all[pick])), y_all[pick])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    # Re-estimate BatchNorm statistics over all frames: after a short fit the
    # running averages lag the weights, and eval-mode predictions suffer.
    _recalibrate_batchnorm(model, x_all)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _recalibrate_batchnorm(model: Any, frames: Any, batch: int = 64) -> None:
    import torch

    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # cumulative average over the pass
    model.train()
    with torch.no_grad():
        for start in range(0, len(frames), batch):
            model(normalise(frames[start : start + batch]))
    model.eval()
