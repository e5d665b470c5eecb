"""Edited videos with known shot boundaries: hard cuts between scenes, and
fades (to black and back, or a cross-dissolve) that must not count as cuts."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from pipeline.synthetic.scenes import scene_frames


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(20, 236, size=3))  # type: ignore[return-value]


def cut_frames(lengths: list[int], *, height: int = 96, width: int = 128,
               seed: int = 0) -> tuple[Iterator[np.ndarray], list[int]]:
    """Shots of `lengths` frames joined by hard cuts; returns (frames, the first
    frame index of every shot after the first)."""
    rng = np.random.default_rng(seed)
    colours = [_colour(rng) for _ in lengths]
    for i in range(1, len(colours)):  # neighbouring shots differ clearly
        while np.abs(np.subtract(colours[i], colours[i - 1])).sum() < 150:
            colours[i] = _colour(rng)
    cuts = list(np.cumsum(lengths)[:-1].tolist())

    def frames() -> Iterator[np.ndarray]:
        for index, (length, colour) in enumerate(zip(lengths, colours, strict=True)):
            yield from scene_frames(length, height=height, width=width, colour=colour,
                                    seed=seed * 1000 + index)

    return frames(), cuts


def fade_frames(n_before: int, fade: int, n_after: int, *, height: int = 96, width: int = 128,
                seed: int = 0, through_black: bool = False) -> Iterator[np.ndarray]:
    """One scene dissolving into another over `fade` frames (or fading out to
    black and in again): a gradual transition with no hard cut."""
    rng = np.random.default_rng(seed)
    total = n_before + fade + n_after
    first = list(scene_frames(total, height=height, width=width, colour=_colour(rng), seed=seed))
    second = list(scene_frames(total, height=height, width=width, colour=_colour(rng),
                               seed=seed + 1))
    for i in range(total):
        t = min(1.0, max(0.0, (i - n_before + 1) / (fade + 1)))
        if through_black:
            a, b = (first[i], 1 - 2 * t) if t < 0.5 else (second[i], 2 * t - 1)
            frame = a.astype(np.float32) * b
        else:
            frame = first[i].astype(np.float32) * (1 - t) + second[i].astype(np.float32) * t
        yield np.clip(frame, 0, 255).astype(np.uint8)
