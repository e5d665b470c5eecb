"""Clip sampling: which frames a clip takes, the augmentation (crop, flip and
its label mapping), per-epoch shards for DDP workers, clip seeds, and the
learning-rate schedule."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

from pipeline.config import ClipSpec, SampleSpec
from pipeline.plan.needs import clip_frames, clip_starts
from pipeline.training.clip_dataset import clip_seed, epoch_shard
from pipeline.training.clip_sampling import ClipRecipe, augment, clip_indices, flipped_label
from pipeline.training.worker_loop import warmup_cosine

RECIPE = ClipRecipe(clip_len=4, frame_step=2, width=32, height=24, augment=True, hflip=True)


def _clip(seed: int = 0, frames: int = 4) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (frames, 24, 32, 3), dtype=np.uint8)


def _items(n: int) -> list[dict[str, Any]]:
    return [{"uri": f"/videos/v{i:02d}.mp4", "label": i % 3} for i in range(n)]


# -- clip_indices ------------------------------------------------------------------
def test_random_clips_stay_in_range_and_vary_with_the_rng() -> None:
    """Random starts cover the whole valid range [0, n - span] and nothing else;
    frames are frame_step apart; the same seed picks the same clip."""
    n = 20  # span 7: starts 0..13
    starts = set()
    for seed in range(300):
        frames = clip_indices(RECIPE, n, np.random.default_rng(seed))
        assert len(frames) == RECIPE.clip_len
        assert list(np.diff(frames)) == [RECIPE.frame_step] * (RECIPE.clip_len - 1)
        assert frames[0] >= 0 and frames[-1] <= n - 1
        starts.add(frames[0])
    assert starts == set(range(14))
    assert clip_indices(RECIPE, n, np.random.default_rng(7)) == \
        clip_indices(RECIPE, n, np.random.default_rng(7))


def test_centre_clip_is_deterministic() -> None:
    """Without an rng the clip is the centre one: start (n - span) // 2."""
    assert RECIPE.span == 7
    assert clip_indices(RECIPE, 20, None) == (6, 8, 10, 12)
    assert clip_indices(RECIPE, 7, None) == (0, 2, 4, 6)


@pytest.mark.parametrize(("clip_len", "frame_step"), [(4, 2), (8, 1), (5, 3), (16, 1)])
def test_centre_clip_is_the_clip_vidlake_label_takes(clip_len: int, frame_step: int) -> None:
    """Validation scores the clip labelling will take (one clip per video,
    centred), for every video length, short ones included."""
    recipe = ClipRecipe(clip_len, frame_step, 32, 32, augment=False)
    spec = ClipSpec(clip_len=clip_len, frame_step=frame_step)
    for n in range(1, 80):
        (start,) = clip_starts(spec, recipe.span, n)
        assert clip_indices(recipe, n, None) == clip_frames(start, clip_len, frame_step, n), n


def test_short_videos_repeat_their_last_frame() -> None:
    """A video shorter than the span still gives clip_len frames, the last repeated,
    random or not."""
    assert clip_indices(RECIPE, 5, None) == (0, 2, 4, 4)
    assert clip_indices(RECIPE, 1, None) == (0, 0, 0, 0)
    assert clip_indices(RECIPE, 5, np.random.default_rng(3)) == (0, 2, 4, 4)


# -- augment -----------------------------------------------------------------------
KEYS = np.asarray([0, 30, 60, 95, 130, 170, 200], np.int64)


def test_keyframe_clips_are_consecutive_keyframes() -> None:
    """--sample keyframes: a clip is clip_len keyframes, frame_step apart among
    them; validation takes the centre clip of the keyframes."""
    recipe = ClipRecipe(3, 2, 32, 32, augment=False, sample=SampleSpec.parse("keyframes"))
    assert clip_indices(recipe, 220, None, 25.0, KEYS) == (30, 95, 170)  # positions 1, 3, 5
    starts = {clip_indices(recipe, 220, np.random.default_rng(s), 25.0, KEYS)[0]
              for s in range(100)}
    assert starts == {0, 30, 60}  # start positions 0..2 of 7 keyframes, span 5


def test_approximate_clips_take_the_keyframes_their_targets_snap_to() -> None:
    """fps:1~ at 25 fps targets every 25th frame: snapped, 0, 0, 30, 60, 95, 95,
    130, 170, 200 become 0, 30, 60, 95, 130, 170, 200: clips of those."""
    recipe = ClipRecipe(4, 1, 32, 32, augment=False, sample=SampleSpec.parse("fps:1~"))
    assert clip_indices(recipe, 220, None, 25.0, KEYS) == (30, 60, 95, 130)
    few = ClipRecipe(4, 1, 32, 32, augment=False, sample=SampleSpec.parse("uniform:2~"))
    assert clip_indices(few, 220, None, 25.0, KEYS) == (30, 130, 130, 130)  # short: repeats


def test_augment_keeps_shape_and_dtype_and_is_seeded() -> None:
    """Same seed, same output; different seeds give different crops."""
    clip = _clip()
    out, label = augment(clip, 1, RECIPE, np.random.default_rng(5))
    assert out.shape == clip.shape and out.dtype == np.uint8
    assert out.flags.c_contiguous
    assert label in (0, 1)
    again, _ = augment(clip, 1, RECIPE, np.random.default_rng(5))
    assert np.array_equal(out, again)
    others = [augment(clip, 1, RECIPE, np.random.default_rng(s))[0] for s in range(6, 10)]
    assert any(not np.array_equal(out, o) for o in others)
    assert not all(np.array_equal(clip, o) for o in others)  # it does crop


def test_augment_uses_one_crop_box_for_the_whole_clip() -> None:
    """Identical input frames stay identical: every frame gets the same crop and flip."""
    clip = np.repeat(_clip(1, frames=1), 4, axis=0)
    for seed in range(10):
        out, _ = augment(clip, 0, RECIPE, np.random.default_rng(seed))
        assert all(np.array_equal(out[0], frame) for frame in out[1:])


def test_without_hflip_labels_never_change() -> None:
    recipe = ClipRecipe(4, 2, 32, 24, augment=True, hflip=False, flip_pairs=((0, 1),))
    clip = _clip()
    assert {augment(clip, 0, recipe, np.random.default_rng(s))[1] for s in range(40)} == {0}


def test_flips_are_opt_in() -> None:
    """A recipe without hflip never mirrors a clip: the default output is the
    crop alone, identical to an explicit hflip=False over 40 seeds."""
    default = ClipRecipe(4, 2, 32, 24, augment=True)
    plain = ClipRecipe(4, 2, 32, 24, augment=True, hflip=False)
    clip = _clip(3)
    assert not default.hflip
    for seed in range(40):
        out, _ = augment(clip, 0, default, np.random.default_rng(seed))
        assert np.array_equal(out, augment(clip, 0, plain, np.random.default_rng(seed))[0])


def test_flip_mirrors_the_crop_and_maps_labels_through_flip_pairs() -> None:
    """With the same seed the crop box is the same with or without hflip, so
    the hflip output is the no-flip output, or exactly its mirror image with
    the label swapped through flip_pairs; both happen over 40 seeds."""
    swapping = ClipRecipe(4, 2, 32, 24, augment=True, hflip=True, flip_pairs=((0, 1),))
    plain = ClipRecipe(4, 2, 32, 24, augment=True, hflip=False)
    clip = _clip(2)
    flips = 0
    for seed in range(40):
        out, label = augment(clip, 0, swapping, np.random.default_rng(seed))
        reference, _ = augment(clip, 0, plain, np.random.default_rng(seed))
        if label == 1:
            flips += 1
            assert np.array_equal(out, reference[:, :, ::-1])
        else:
            assert label == 0
            assert np.array_equal(out, reference)
    assert 5 <= flips <= 35
    # a class outside every pair keeps its label whether flipped or not
    assert {augment(clip, 2, swapping, np.random.default_rng(s))[1] for s in range(40)} == {2}
    # the other side of a pair maps back
    assert {augment(clip, 1, swapping, np.random.default_rng(s))[1] for s in range(40)} == {0, 1}


def test_flipped_label() -> None:
    pairs = ((0, 1), (2, 3))
    assert [flipped_label(i, pairs) for i in range(5)] == [1, 0, 3, 2, 4]
    assert flipped_label(1, ()) == 1


# -- epoch_shard and clip_seed -------------------------------------------------------
def test_training_shards_are_equal_disjoint_and_reshuffled() -> None:
    """2 workers get the same number of items, no item twice, n // 2 * 2 in all;
    the order is fixed by (seed, epoch) and changes with the epoch."""
    items = _items(11)

    def shards(epoch: int, seed: int = 3) -> list[list[str]]:
        return [[i["uri"] for i in epoch_shard(items, epoch=epoch, seed=seed, rank=r, world=2,
                                               shuffle=True)] for r in range(2)]

    first = shards(0)
    assert [len(s) for s in first] == [5, 5]
    assert not set(first[0]) & set(first[1])
    assert len(set(first[0]) | set(first[1])) == 10
    assert shards(0) == first
    assert shards(1) != first
    assert shards(0, seed=4) != first
    # over several epochs the dropped item varies, so every item gets trained on
    seen = {u for e in range(6) for s in shards(e) for u in s}
    assert seen == {i["uri"] for i in items}


def test_shard_items_keep_their_fields_and_get_their_clip_seed() -> None:
    items = _items(4)
    shard = epoch_shard(items, epoch=2, seed=9, rank=1, world=2, shuffle=True)
    for item in shard:
        original = next(i for i in items if i["uri"] == item["uri"])
        assert item == {**original, "seed": clip_seed(9, 2, item["uri"])}
    assert all("seed" not in i for i in items)  # the inputs are not modified


def test_validation_shards_cover_every_item_once() -> None:
    items = _items(11)
    for world in (1, 2, 3):
        shards = [epoch_shard(items, epoch=5, seed=0, rank=r, world=world, shuffle=False)
                  for r in range(world)]
        uris = [i["uri"] for s in shards for i in s]
        assert sorted(uris) == [i["uri"] for i in items]


def test_clip_seed_is_deterministic_and_differs_per_epoch_and_video() -> None:
    """Fixed by (seed, epoch, uri); fits an int64 (Ray Data carries it in numpy)."""
    seed = clip_seed(1, 0, "/v/a.mp4")
    assert seed == clip_seed(1, 0, "/v/a.mp4")
    others = {clip_seed(1, 1, "/v/a.mp4"), clip_seed(2, 0, "/v/a.mp4"),
              clip_seed(1, 0, "/v/b.mp4")}
    assert seed not in others and len(others) == 3
    assert all(0 <= s < 2**63 for s in (seed, *others))
    assert np.asarray([seed], np.int64)[0] == seed


# -- warmup_cosine -----------------------------------------------------------------
def test_warmup_cosine_rises_linearly_then_decays_to_zero() -> None:
    factor = warmup_cosine(total_steps=100, warmup_steps=10)
    warm = [factor(s) for s in range(10)]
    assert warm == pytest.approx([(s + 1) / 10 for s in range(10)])
    assert factor(9) == pytest.approx(1.0) and factor(10) == pytest.approx(1.0)
    decay = [factor(s) for s in range(10, 100)]
    assert all(a >= b for a, b in itertools.pairwise(decay))
    assert factor(55) == pytest.approx(0.5)
    assert 0 <= factor(99) < 0.001
    assert factor(500) == pytest.approx(0.0)  # past the end it stays at 0


def test_warmup_cosine_without_warmup_starts_at_one() -> None:
    factor = warmup_cosine(total_steps=10, warmup_steps=0)
    assert factor(0) == pytest.approx(1.0)
    assert factor(5) == pytest.approx(0.5)
