"""Which frames a training or validation clip takes, and how it is augmented.

Training clips start at a random frame and get a random resized crop (one
box for the whole clip) and, only when asked (`hflip`: a flip can turn one
class into another), a horizontal flip; validation clips are the
centre clip, as decoded, so validation sees exactly what `vidlake label`
feeds the model. Every random choice comes from one integer seed per clip,
so a run is reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.config import SampleSpec
from pipeline.plan.needs import clip_frames
from pipeline.plan.sampling import sample_indices

# torchvision's RandomResizedCrop defaults for area; 0.4 keeps enough of the
# frame that a small object still appears in most crops.
CROP_SCALE = (0.4, 1.0)
CROP_RATIO = (3 / 4, 4 / 3)


@dataclass(frozen=True)
class ClipRecipe:
    """How to cut clips: `clip_len` frames `frame_step` apart, decoded at
    (width, height) pixels; `augment` for training clips. `flip_pairs` maps a
    class index to the class a horizontal flip turns it into (left <-> right);
    classes not in it keep their label; `hflip` False never flips. With a
    `sample`, a clip is `clip_len` consecutive frames of that sample (`frame_step`
    apart in it): `keyframes` cuts clips of keyframes, decoded alone."""

    clip_len: int
    frame_step: int
    width: int
    height: int
    augment: bool
    hflip: bool = False  # opt-in: a flip can change what a clip shows (left <-> right)
    flip_pairs: tuple[tuple[int, int], ...] = ()
    sample: SampleSpec | None = None  # None: every frame

    @property
    def span(self) -> int:
        """Frames from a clip's first to its last, inclusive."""
        return (self.clip_len - 1) * self.frame_step + 1


def clip_indices(recipe: ClipRecipe, n_frames: int, rng: np.random.Generator | None,
                 fps: float = 0.0, keyframes: np.ndarray | None = None) -> tuple[int, ...]:
    """Frame indices of one clip of a video of `n_frames` frames at `fps`: a
    random start with `rng`, the centre clip without. Short videos (or samples)
    repeat their last frame. `keyframes` (int64 [K], sorted) when the recipe's
    sample needs them."""
    if recipe.sample is None:
        return _clip(recipe, n_frames, rng)
    sampled = sample_indices(recipe.sample, n_frames, fps, keyframes)
    return tuple(int(sampled[i]) for i in _clip(recipe, len(sampled), rng))


def _clip(recipe: ClipRecipe, length: int, rng: np.random.Generator | None) -> tuple[int, ...]:
    """Positions in [0, length) of one clip."""
    last_start = max(0, length - recipe.span)
    start = int(rng.integers(0, last_start + 1)) if rng is not None else last_start // 2
    return clip_frames(start, recipe.clip_len, recipe.frame_step, length)


def _crop_box(rng: np.random.Generator, height: int, width: int) -> tuple[int, int, int, int]:
    """(top, left, h, w) of a random resized crop, as torchvision draws it."""
    area = height * width
    for _ in range(10):
        target = area * rng.uniform(*CROP_SCALE)
        ratio = float(np.exp(rng.uniform(np.log(CROP_RATIO[0]), np.log(CROP_RATIO[1]))))
        w, h = round((target * ratio) ** 0.5), round((target / ratio) ** 0.5)
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
    return 0, 0, height, width


def augment(clip: np.ndarray, label: int, recipe: ClipRecipe,
            rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Random resized crop (same box on every frame) back to the clip's size,
    and a horizontal flip with probability 1/2 (its label mapped through
    `flip_pairs`). uint8 [T, H, W, 3] -> uint8 [T, H, W, 3].

    Pillow crops and resizes in one bilinear pass; it keeps torch out of the
    decode tasks, whose short-lived processes would pay seconds to import it."""
    from PIL import Image

    _, height, width, _ = clip.shape
    top, left, h, w = _crop_box(rng, height, width)
    box = (left, top, left + w, top + h)
    out = np.stack([np.asarray(Image.fromarray(frame).resize(
        (width, height), Image.Resampling.BILINEAR, box=box)) for frame in clip])
    if recipe.hflip and rng.random() < 0.5:
        out = out[:, :, ::-1]
        label = flipped_label(label, recipe.flip_pairs)
    return np.ascontiguousarray(out), label


def flipped_label(label: int, pairs: tuple[tuple[int, int], ...]) -> int:
    for a, b in pairs:
        if label == a:
            return b
        if label == b:
            return a
    return label
