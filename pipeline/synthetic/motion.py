"""Videos whose classes differ only in motion: a shape drifting left, right,
up or down over a static textured background.

Every frame on its own carries no information about the class: colours,
sizes, shapes and backgrounds are drawn from one distribution for all
classes, and the shape wraps around the frame edges (a torus), so its
position in any single frame is uniform whatever the direction. A frame
classifier can only guess (25 % for four classes); a clip model that sees
frames in order can tell the direction.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

# (dy, dx) per frame, in units of the clip's speed.
DIRECTIONS: dict[str, tuple[int, int]] = {
    "left": (0, -1), "right": (0, 1), "up": (-1, 0), "down": (1, 0)}


@dataclass(frozen=True)
class MotionScene:
    """Everything random about one video, drawn by `draw_scene`."""

    direction: str
    speed: int  # pixels per frame
    side: int  # shape size in pixels
    round_shape: bool
    start: tuple[int, int]  # (y, x) of the shape's top-left corner at frame 0
    shape_colour: tuple[int, int, int]
    background: np.ndarray  # uint8 [H, W, 3]


def draw_scene(direction: str, rng: np.random.Generator, *, height: int,
               width: int) -> MotionScene:
    """A random scene moving in `direction`: a smooth random background
    (two colours blended by a low-frequency pattern plus grain), a square or
    disc of 1/6-1/3 of the frame, 1-3 px per frame."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {sorted(DIRECTIONS)}, got {direction!r}")
    # Dark backgrounds and bright shapes: every colour is random, but the shape
    # always stands out (a shape the colour of its background is invisible,
    # whatever the model).
    low, high = rng.integers(0, 110, size=(2, 3)).astype(np.float32)
    # A smooth two-colour field (low spatial frequency), so the background has
    # no edges that look like the shape.
    fy, fx = rng.uniform(0.5, 2.0, size=2) * 2 * np.pi
    py, px = rng.uniform(0, 2 * np.pi, size=2)
    yy, xx = np.mgrid[0:1:height * 1j, 0:1:width * 1j]
    blend = (0.5 + 0.5 * np.sin(fy * yy + py) * np.sin(fx * xx + px))[..., None]
    grain = rng.normal(0, 8, size=(height, width, 3))
    background = np.clip(low * blend + high * (1 - blend) + grain, 0, 255).astype(np.uint8)
    side = int(rng.integers(min(height, width) // 6, min(height, width) // 3 + 1))
    colour = _bright(rng)
    return MotionScene(direction, int(rng.integers(1, 4)), side, bool(rng.integers(0, 2)),
                       (int(rng.integers(0, height)), int(rng.integers(0, width))),
                       colour, background)


def _bright(rng: np.random.Generator) -> tuple[int, int, int]:
    """A random colour whose brightest channel is at least 200."""
    colour = rng.integers(0, 256, size=3)
    colour[rng.integers(0, 3)] = rng.integers(200, 256)
    return int(colour[0]), int(colour[1]), int(colour[2])


def _shape_mask(scene: MotionScene, height: int, width: int) -> np.ndarray:
    """bool [H, W]: the shape at the top-left corner (rolled into place per frame)."""
    mask = np.zeros((height, width), bool)
    if scene.round_shape:
        yy, xx = np.mgrid[: scene.side, : scene.side]
        centre = (scene.side - 1) / 2
        mask[: scene.side, : scene.side] = (yy - centre) ** 2 + (xx - centre) ** 2 \
            <= (scene.side / 2) ** 2
    else:
        mask[: scene.side, : scene.side] = True
    return mask


def motion_frames(scene: MotionScene, n: int) -> Iterator[np.ndarray]:
    """`n` RGB frames uint8 [H, W, 3] of `scene`; the shape wraps at the edges."""
    height, width = scene.background.shape[:2]
    mask = _shape_mask(scene, height, width)
    dy, dx = DIRECTIONS[scene.direction]
    colour = np.asarray(scene.shape_colour, np.uint8)
    for i in range(n):
        shift = (scene.start[0] + dy * scene.speed * i, scene.start[1] + dx * scene.speed * i)
        frame = scene.background.copy()
        frame[np.roll(mask, shift, axis=(0, 1))] = colour
        yield frame
