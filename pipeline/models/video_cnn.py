"""Clip classifiers: torchvision's (3D CNNs and MViT) with their documented
preprocessing, read from torchvision's weight enums without downloading, and
vidlake's own small_3d (pipeline/models/small_3d.py), whose preprocessing is
stated here."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.errors import ConfigError

SMALL_3D = "small_3d"
VIDEO_CNNS = ("r3d_18", "mc3_18", "r2plus1d_18", "s3d", "mvit_v2_s", SMALL_3D)
# MViT's pooling and relative-position tables are sized for 16x224x224 at build
# time; any other T (or crop) fails in a reshape. The 3D CNNs pool adaptively.
_FIXED_LEN = frozenset({"mvit_v2_s"})
# Floats per resize chunk (2**26 = 256 MiB): a 16-frame 1080p clip as float32
# would otherwise need 400 MiB at once.
_CHUNK_FLOATS = 2**26


@dataclass(frozen=True)
class ClipPreprocess:
    """How a model expects clips: resize, center crop, then mean/std on [0, 1] RGB.

    `resize` is (H, W) pixels, or (S,) meaning "shorter side to S, aspect kept"
    (torchvision's convention; mvit_v2_s uses it). `clip_len` is the T frames the
    weights were evaluated with; `min_len` the shortest T the model accepts;
    `fixed_len` says that only T == clip_len works.
    """

    resize: tuple[int, int] | tuple[int]
    crop: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    clip_len: int
    min_len: int = 1
    fixed_len: bool = False


def check_video_arch(name: str) -> None:
    if name not in VIDEO_CNNS:
        raise ConfigError(f"unknown video model {name!r}; video models are: "
                          f"{', '.join(VIDEO_CNNS)}")


def _weights(arch: str) -> Any:
    """The KINETICS400_V1 weight enum of `arch` (metadata only, nothing downloaded)."""
    import torchvision

    check_video_arch(arch)
    return torchvision.models.get_model_weights(arch).KINETICS400_V1


def _documented_clip_len(meta: dict[str, Any]) -> int:
    # Only the prose in meta["_docs"] states the evaluation clip length.
    found = re.search(r"clip_len=(\d+)", str(meta.get("_docs", "")))
    return int(found.group(1)) if found else int(meta.get("min_temporal_size", 16))


# The r3d family's Kinetics-400 statistics (torchvision's VideoClassification
# defaults, which its weight enums leave implicit).
KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)
# small_3d has no weight enum: its preprocessing is what `vidlake train` gives
# it by default (pipeline/training/model_shape.py), with the r3d family's
# statistics; a trained checkpoint records its own resize, crop and clip length.
SMALL_3D_PREPROCESS = ClipPreprocess(resize=(64, 64), crop=(64, 64), mean=KINETICS_MEAN,
                                     std=KINETICS_STD, clip_len=8)


@functools.cache
def preprocess_for(arch: str) -> ClipPreprocess:
    """The preprocessing documented with `arch`'s Kinetics-400 weights (for
    small_3d, SMALL_3D_PREPROCESS).

    The weights' `transforms` partial omits mean/std for the ResNet-3D family (the
    class defaults apply), so the transform is instantiated (a parameter-free
    module) and its resolved attributes are read.
    """
    if arch == SMALL_3D:
        return SMALL_3D_PREPROCESS
    weights = _weights(arch)
    transform = weights.transforms()
    clip_len = _documented_clip_len(weights.meta)
    return ClipPreprocess(
        resize=_size(transform.resize_size),
        crop=(int(transform.crop_size[0]), int(transform.crop_size[1])),
        mean=_triple(transform.mean),
        std=_triple(transform.std),
        clip_len=clip_len,
        min_len=clip_len if arch in _FIXED_LEN else int(weights.meta.get("min_temporal_size", 1)),
        fixed_len=arch in _FIXED_LEN,
    )


def trained_preprocess(arch: str, config: dict[str, Any]) -> ClipPreprocess:
    """`preprocess_for(arch)` with the resize, crop and clip length a vidlake
    training run recorded in its checkpoint (config["clip"]), when there is one."""
    import dataclasses

    documented = preprocess_for(arch)
    trained = config.get("clip") or {}
    if not trained:
        return documented
    return dataclasses.replace(
        documented, resize=(int(trained["resize"][0]), int(trained["resize"][1])),
        crop=(int(trained["crop"][0]), int(trained["crop"][1])),
        clip_len=int(trained["clip_len"]))


def _size(values: list[int]) -> tuple[int, int] | tuple[int]:
    return (int(values[0]), int(values[1])) if len(values) == 2 else (int(values[0]),)


def _triple(values: list[float]) -> tuple[float, float, float]:
    return float(values[0]), float(values[1]), float(values[2])


def build_video_cnn(arch: str, num_classes: int) -> Any:
    """An untrained clip classifier: small_3d, or torchvision's (weights=None:
    nothing is downloaded).

    Input float32 [N, 3, T, H, W] as made by `clip_batch`; output logits [N, num_classes].
    """
    check_video_arch(arch)
    if arch == SMALL_3D:
        from pipeline.models.small_3d import build_small_3d

        return build_small_3d(num_classes)
    import torchvision

    return torchvision.models.get_model(arch, weights=None, num_classes=num_classes)


@functools.lru_cache(maxsize=1)
def kinetics400_label_names() -> tuple[str, ...]:
    """Kinetics-400 class names shipped inside torchvision (no download)."""
    return tuple(_weights("r3d_18").meta["categories"])


@functools.cache
def output_layer_name(arch: str) -> str:
    """Name of `arch`'s final class-scoring layer: the last Linear, except in S3D,
    whose head is a 1x1x1 Conv3d (weight [num_classes, 1024, 1, 1, 1])."""
    import torch

    scoring = (torch.nn.Linear, torch.nn.Conv3d)
    # named_modules follows registration order, and every head is registered last.
    return [n for n, m in build_video_cnn(arch, 2).named_modules() if isinstance(m, scoring)][-1]


def video_num_classes_in(arch: str, state_dict: dict[str, Any]) -> int:
    """Number of classes a state_dict was trained for, read off its output layer."""
    name = output_layer_name(arch)
    weight = state_dict.get(f"{name}.weight")
    if weight is None:
        raise ConfigError(f"weights do not fit {arch}: no '{name}.weight' tensor")
    return int(weight.shape[0])


def resized_hw(resize: tuple[int, ...], height: int, width: int) -> tuple[int, int]:
    """Output (H, W) of torchvision's resize: fixed (H, W), or shorter side to S."""
    if len(resize) == 2:
        return resize[0], resize[1]
    side = resize[0]
    # Same truncation as torchvision's _compute_resized_output_size.
    if width <= height:
        return int(side * height / width), side
    return side, int(side * width / height)


def normalized_frames(frames: np.ndarray, resize: tuple[int, ...], crop: tuple[int, int],
                      mean: tuple[float, ...], std: tuple[float, ...], device: Any) -> Any:
    """uint8 RGB [M, H, W, 3] -> float32 [M, 3, crop_h, crop_w] on `device`.

    Bilinear resize with antialias (downscaling 1080p to ~128 px aliases badly
    without it; note torchvision's own preset uses antialias=False), center crop,
    then (x / 255 - mean) / std.
    """
    import torch

    count, height, width, _ = frames.shape
    size = resized_hw(resize, height, width)
    out = torch.empty((count, 3, *crop), dtype=torch.float32, device=device)
    scale = torch.tensor(std, device=device).view(1, 3, 1, 1) * 255
    shift = torch.tensor(mean, device=device).view(1, 3, 1, 1) * 255
    step = max(1, _CHUNK_FLOATS // (height * width * 3))
    for start in range(0, count, step):
        chunk = torch.from_numpy(np.ascontiguousarray(frames[start:start + step])).to(device)
        chunk = _resize(chunk.permute(0, 3, 1, 2).float(), size)
        out[start:start + step] = (_center_crop(chunk, crop) - shift) / scale
    return out


def _resize(x: Any, size: tuple[int, int]) -> Any:
    """float [M, 3, H, W] -> [M, 3, *size]; no-op when already that size."""
    import torch

    if tuple(x.shape[-2:]) == size:
        return x
    return torch.nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False,
                                           antialias=True)


def _center_crop(x: Any, crop: tuple[int, int]) -> Any:
    """[..., H, W] -> [..., crop_h, crop_w], offsets rounded as torchvision does."""
    height, width = x.shape[-2:]
    if height < crop[0] or width < crop[1]:
        raise ConfigError(f"resized frames {height}x{width} are smaller than the crop "
                          f"{crop[0]}x{crop[1]}")
    top, left = round((height - crop[0]) / 2.0), round((width - crop[1]) / 2.0)
    return x[..., top:top + crop[0], left:left + crop[1]]


def clip_batch(frames: np.ndarray, pre: ClipPreprocess, device: Any) -> Any:
    """uint8 RGB clips [N, T, H, W, 3] -> float32 [N, 3, T, crop_h, crop_w] on `device`."""
    if frames.ndim != 5 or frames.shape[-1] != 3:
        raise ValueError(f"clips must be [N, T, H, W, 3], got shape {frames.shape}")
    n, t = frames.shape[:2]
    flat = normalized_frames(frames.reshape(n * t, *frames.shape[2:]), pre.resize, pre.crop,
                             pre.mean, pre.std, device)
    # Video models take channels before time: [N, T, 3, h, w] -> [N, 3, T, h, w].
    return flat.view(n, t, 3, *pre.crop).permute(0, 2, 1, 3, 4).contiguous()
