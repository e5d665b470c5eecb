"""Edits with known transitions, for shot detection tests and its benchmark:
hard cuts, dissolves, fades through black, flashes (bright frames inside a
shot: not a transition) and fast pans (large motion: not a transition).

An edit is a list of `Shot`s; `edit_frames` plays them one after another and
returns the frames with the ground truth: the first frame of every shot that
follows a hard cut, and the frame span [first, last] of every gradual one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from pipeline.synthetic.scenes import scene_frames

Source = Callable[[int], np.ndarray]  # frame k of a shot's content, any k >= 0


@dataclass(frozen=True)
class Shot:
    """One shot: `length` frames of its own content (`scene`: a tinted noisy
    background with a moving square; `pan`: a wide random texture panned
    `speed` pixels a frame), then its transition into the next shot (`cut`,
    `dissolve` or `fade`, over `transition` frames). `flashes`: (offset, n)
    pairs, n near-white frames from that frame of the shot on."""

    length: int
    content: str = "scene"
    into: str = "cut"
    transition: int = 0
    speed: int = 0
    flashes: tuple[tuple[int, int], ...] = ()


@dataclass
class EditTruth:
    """What an edit holds: hard cuts (first frame of the new shot) and gradual
    transitions ([first, last] frames that mix two shots), and its length."""

    cuts: list[int] = field(default_factory=list)
    gradual: list[tuple[int, int]] = field(default_factory=list)
    n_frames: int = 0


def _scene(height: int, width: int, seed: int) -> Source:
    rng = np.random.default_rng(seed)
    colour = tuple(int(c) for c in rng.integers(20, 236, size=3))
    cache: list[np.ndarray] = []
    frames = scene_frames(10**6, height=height, width=width, colour=colour,  # type: ignore[arg-type]
                          seed=seed)

    def frame(k: int) -> np.ndarray:
        while len(cache) <= k:
            cache.append(next(frames))
        return cache[k]

    return frame


def _pan(height: int, width: int, seed: int, speed: int) -> Source:
    """A texture of random blocks three frames wide, scrolled sideways (wrapping)."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, size=(-(-height // 8), max(1, 3 * width // 8), 3))
    canvas = np.kron(blocks, np.ones((8, 8, 1))).astype(np.uint8)[:height]
    wide = canvas.shape[1]

    def frame(k: int) -> np.ndarray:
        columns = (np.arange(width) + k * speed) % wide
        return canvas[:, columns]

    return frame


def _source(shot: Shot, height: int, width: int, seed: int) -> Source:
    if shot.content == "pan":
        return _pan(height, width, seed, shot.speed or max(1, width // 12))
    if shot.content != "scene":
        raise ValueError(f"unknown shot content {shot.content!r}")
    return _scene(height, width, seed)


def _flashed(frame: np.ndarray) -> np.ndarray:
    return (frame.astype(np.float32) * 0.2 + 255 * 0.8).astype(np.uint8)


def edit_frames(shots: list[Shot], *, height: int = 90, width: int = 160,
                seed: int = 0) -> tuple[Iterator[np.ndarray], EditTruth]:
    """RGB frames uint8 [height, width, 3] of the edit, and its truth."""
    truth = EditTruth()
    position = 0
    for shot, following in zip(shots, [*shots[1:], None], strict=True):
        position += shot.length
        if following is None:
            break
        if shot.into == "cut" or shot.transition <= 0:
            truth.cuts.append(position)
        else:
            truth.gradual.append((position, position + shot.transition - 1))
            position += shot.transition
    truth.n_frames = position
    sources = [_source(s, height, width, seed * 100 + i) for i, s in enumerate(shots)]
    return _play(shots, sources), truth


def _play(shots: list[Shot], sources: list[Source]) -> Iterator[np.ndarray]:
    """Each shot's frames (flashes applied), then its transition mixing its
    continuation with the next shot's first frames (which then go on from there)."""
    start = 0  # the shot's first own frame (after the transition into it)
    for i, shot in enumerate(shots):
        flashed = {o + k for o, n in shot.flashes for k in range(n)}
        for k in range(start, start + shot.length):
            own = sources[i](k)
            yield _flashed(own) if k - start in flashed else own
        gradual = i + 1 < len(shots) and shot.into != "cut" and shot.transition > 0
        if not gradual:
            start = 0
            continue
        d = shot.transition
        for j in range(d):
            t = (j + 1) / (d + 1)
            a = sources[i](start + shot.length + j).astype(np.float32)
            b = sources[i + 1](j).astype(np.float32)
            if shot.into == "fade":
                frame = a * (1 - 2 * t) if t < 0.5 else b * (2 * t - 1)
            else:
                frame = a * (1 - t) + b * t
            yield np.clip(frame, 0, 255).astype(np.uint8)
        start = d
