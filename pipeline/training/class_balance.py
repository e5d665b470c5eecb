"""Training on an imbalanced corpus: `--class-balance none|sampler|loss`.

- sampler: each epoch draws as many training videos as there are, with
  replacement, each with probability proportional to 1/count(its class), so
  every class is drawn equally often in expectation. The draw happens on the
  item list before Ray Data sees it (one clip per drawn item, as without
  balancing), from (seed, epoch) alone: every worker computes the same draw
  and takes its slice, and a rerun with --seed draws the same videos.
- loss: cross-entropy weighted by N / (K * count(class)) over the training
  split (N videos, K classes), scikit-learn's "balanced" weights: they
  average 1 over the training videos, so the learning rate keeps its meaning.

Both need every class in the training split (a class with no training video
has no weight); the driver refuses them otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pipeline.errors import ConfigError

BALANCE_MODES = ("none", "sampler", "loss")


def class_counts(labels: Sequence[int], n_classes: int) -> np.ndarray:
    """int64 [K]: training videos per class index."""
    return np.bincount(np.asarray(labels, np.int64), minlength=n_classes).astype(np.int64)


def check_balance(mode: str, counts: np.ndarray, names: Sequence[str]) -> None:
    """ConfigError for an unknown mode, or a balanced mode with a class that
    has no training video (its weight would be infinite)."""
    if mode not in BALANCE_MODES:
        raise ConfigError(f"--class-balance must be one of {', '.join(BALANCE_MODES)}, "
                          f"got {mode!r}")
    empty = [names[int(i)] for i in np.flatnonzero(counts == 0)]
    if mode != "none" and empty:
        raise ConfigError(f"--class-balance {mode}: {empty} have no training videos, so "
                          "they cannot be balanced; add some or use --class-balance none")


def loss_weights(counts: np.ndarray) -> np.ndarray:
    """float64 [K]: N / (K * count) per class; 0 for a class with no videos."""
    counts = np.asarray(counts, np.float64)
    weights = np.zeros_like(counts)
    np.divide(counts.sum() / len(counts), counts, out=weights, where=counts > 0)
    return weights


def balanced_draw(labels: Sequence[int], *, seed: int, epoch: int) -> np.ndarray:
    """int64 [N]: indices into `labels` for one epoch, drawn with replacement
    with probability 1/count(class) each (every class equally likely)."""
    index = np.asarray(labels, np.int64)
    p = 1.0 / np.bincount(index)[index]
    # A stream of its own (the trailing 1): the unbalanced shuffle of the same
    # epoch draws from [seed, epoch].
    rng = np.random.default_rng([seed, epoch, 1])
    return rng.choice(len(index), size=len(index), replace=True, p=p / p.sum())
