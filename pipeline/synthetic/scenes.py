"""Frames of simple synthetic scenes: a textured background with a moving shape.

Used to build corpora whose content is known (demo, benchmark, tests). The
texture and motion keep the encoder honest: decoding costs what it would on
real footage of the same size, roughly.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

# Demo classes: the scene's dominant colour (RGB, 0-255).
SCENE_COLOURS: dict[str, tuple[int, int, int]] = {
    "sunset": (235, 120, 40),
    "forest": (40, 150, 60),
    "ocean": (30, 90, 200),
    "snow": (230, 230, 240),
}


def scene_frames(n: int, *, height: int, width: int, colour: tuple[int, int, int],
                 seed: int) -> Iterator[np.ndarray]:
    """`n` RGB frames uint8 [height, width, 3]: a noisy tinted background and a
    contrasting square moving across it."""
    rng = np.random.default_rng(seed)
    base = np.asarray(colour, np.float32)
    noise = rng.normal(0, 18, size=(height, width, 3)).astype(np.float32)
    side = max(4, min(height, width) // 4)
    y0, x0 = rng.integers(0, max(1, height - side)), rng.integers(0, max(1, width - side))
    vy, vx = rng.integers(-3, 4), rng.integers(-3, 4)
    shape_colour = 255 - base
    for i in range(n):
        frame = base + np.roll(noise, shift=i, axis=1)
        y = _bounce(int(y0 + vy * i), height - side)
        x = _bounce(int(x0 + vx * i), width - side)
        frame[y : y + side, x : x + side] = shape_colour
        yield np.clip(frame, 0, 255).astype(np.uint8)


def _bounce(position: int, limit: int) -> int:
    """`position` reflected into [0, limit]: the shape bounces off the edges
    (it never jumps across the frame, which a shot detector would rightly
    take for a cut)."""
    if limit <= 0:
        return 0
    period = 2 * limit
    folded = position % period
    return folded if folded <= limit else period - folded
