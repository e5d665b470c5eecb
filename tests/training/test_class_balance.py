"""--class-balance: the loss weights and the balanced epoch draw, exactly."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from pipeline.errors import ConfigError
from pipeline.training.class_balance import (
    balanced_draw,
    check_balance,
    class_counts,
    loss_weights,
)
from pipeline.training.clip_dataset import epoch_shard

# 20:1, as in the side-by-side run: 40 videos of class 0, 2 of class 1
LABELS = [0] * 40 + [1] * 2


def _items(labels: list[int]) -> list[dict[str, Any]]:
    return [{"uri": f"/v/{i:03d}.mp4", "label": label} for i, label in enumerate(labels)]


def test_loss_weights_are_n_over_k_count_and_average_one_over_the_videos():
    counts = class_counts(LABELS, 2)
    assert counts.tolist() == [40, 2]
    weights = loss_weights(counts)
    assert weights.tolist() == pytest.approx([42 / (2 * 40), 42 / (2 * 2)])  # 0.525, 10.5
    # every class carries the same total weight, and the mean weight per video is 1
    assert (weights * counts).tolist() == pytest.approx([21.0, 21.0])
    assert float((weights * counts).sum() / counts.sum()) == pytest.approx(1.0)
    assert loss_weights(np.array([5, 5, 5])).tolist() == [1.0, 1.0, 1.0]  # balanced: no change
    assert loss_weights(np.array([4, 0])).tolist() == [0.5, 0.0]  # no videos, no weight


def test_balanced_draw_is_seeded_with_replacement_and_equal_per_class():
    draw = balanced_draw(LABELS, seed=7, epoch=3)
    assert draw.shape == (42,) and draw.min() >= 0 and draw.max() < 42
    assert np.array_equal(draw, balanced_draw(LABELS, seed=7, epoch=3))  # reproducible
    assert not np.array_equal(draw, balanced_draw(LABELS, seed=7, epoch=4))  # new each epoch
    assert not np.array_equal(draw, balanced_draw(LABELS, seed=8, epoch=3))
    # over many epochs each class is drawn half the time (2 minority videos
    # each ~10.5 times an epoch, with replacement)
    drawn = np.concatenate([balanced_draw(LABELS, seed=0, epoch=e) for e in range(200)])
    minority = np.isin(drawn, [40, 41]).mean()
    assert minority == pytest.approx(0.5, abs=0.02)
    assert np.bincount(drawn, minlength=42)[:40].min() > 50  # every majority video too (~105)


def test_balanced_shards_split_one_draw_and_vary_the_clips_of_a_repeated_video():
    items = _items(LABELS)
    shards = [epoch_shard(items, epoch=1, seed=3, rank=r, world=2, shuffle=True, balance=True)
              for r in range(2)]
    assert [len(s) for s in shards] == [21, 21]  # as many clips as videos, equal per worker
    both = [item for pair in zip(*shards, strict=True) for item in pair]
    draw = balanced_draw(LABELS, seed=3, epoch=1)
    assert [i["uri"] for i in both] == [items[int(k)]["uri"] for k in draw]
    # a video drawn k times gets k different clip seeds (other frames, other crops)
    assert len({i["seed"] for i in both}) == len(both)
    # without --class-balance sampler the shard is a permutation, as before
    plain = epoch_shard(items, epoch=1, seed=3, rank=0, world=1, shuffle=True)
    assert sorted(i["uri"] for i in plain) == sorted(i["uri"] for i in items)


@pytest.mark.parametrize("mode", ["sampler", "loss"])
def test_balancing_refuses_a_class_without_training_videos(mode: str):
    with pytest.raises(ConfigError, match=rf"--class-balance {mode}: \['up'\] have no training"):
        check_balance(mode, class_counts([0, 0, 2], 3), ["down", "up", "left"])
    check_balance("none", class_counts([0, 0, 2], 3), ["down", "up", "left"])
    with pytest.raises(ConfigError, match="must be one of none, sampler, loss"):
        check_balance("weights", class_counts([0, 1], 2), ["a", "b"])
