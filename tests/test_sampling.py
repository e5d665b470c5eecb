"""Exact checks of the sampling rules."""

import itertools

import numpy as np
import pytest

from pipeline.config import SampleSpec
from pipeline.errors import ConfigError
from pipeline.plan.sampling import sample_indices, sampled_after, sampled_before, sampled_in


def test_uniform_picks_segment_centres():
    assert sample_indices(SampleSpec.parse("uniform:4"), 100, 25).tolist() == [12, 37, 62, 87]


def test_uniform_more_than_frames_gives_every_frame():
    assert sample_indices(SampleSpec.parse("uniform:10"), 3, 25).tolist() == [0, 1, 2]


def test_every_k():
    assert sample_indices(SampleSpec.parse("every:7"), 30, 25).tolist() == [0, 7, 14, 21, 28]


def test_fps_steps_by_rate():
    assert sample_indices(SampleSpec.parse("fps:2"), 50, 10.0).tolist() == [0, 5, 10, 15, 20,
                                                                         25, 30, 35, 40, 45]


def test_fps_above_rate_gives_all_frames():
    np.testing.assert_array_equal(sample_indices(SampleSpec.parse("fps:60"), 5, 30), np.arange(5))


@pytest.mark.parametrize("bad", ["uniform", "uniform:0", "every:1.5", "fps:-1", "random:3", ""])
def test_bad_sample_specs_fail_fast(bad):
    with pytest.raises(ConfigError):
        SampleSpec.parse(bad)


@pytest.mark.parametrize("bad", ["all~", "keyframes~", "keyframes:3", "uniform~", "uniform:~",
                                 "fps:1~~", "~"])
def test_bad_keyframe_specs_fail_fast(bad):
    with pytest.raises(ConfigError):
        SampleSpec.parse(bad)


@pytest.mark.parametrize("text", ["keyframes", "uniform:8~", "fps:0.5~", "every:30~", "uniform:8"])
def test_specs_print_as_parsed(text):
    spec = SampleSpec.parse(text)
    assert str(spec) == text
    assert spec.needs_keyframes == (text == "keyframes" or text.endswith("~"))


def test_keyframes_need_the_videos_keyframes():
    with pytest.raises(ValueError, match="keyframes"):
        sample_indices(SampleSpec.parse("uniform:8~"), 100, 25)


KEYS = np.asarray([0, 10, 50, 51, 200, 990], np.int64)


def test_keyframes_takes_every_keyframe():
    assert sample_indices(SampleSpec.parse("keyframes"), 1000, 25, KEYS).tolist() == KEYS.tolist()


def test_approximate_targets_snap_to_the_keyframe_at_or_before_them():
    # uniform:4 of 1000 targets 125 (GOP of 51), 375, 625 and 875 (GOP of 200)
    assert sample_indices(SampleSpec.parse("uniform:4~"), 1000, 25, KEYS).tolist() == [51, 200]
    # every:25 targets 0, 25 (GOP of 10), 50, 75...175 (GOP of 51), 200...975 (GOP of 200)
    assert sample_indices(SampleSpec.parse("every:25~"), 1000, 25, KEYS).tolist() == [
        0, 10, 50, 51, 200]


def test_targets_before_the_first_keyframe_snap_to_it():
    keys = np.asarray([4, 40], np.int64)
    assert sample_indices(SampleSpec.parse("every:3~"), 60, 25, keys).tolist() == [4, 40]


@pytest.mark.parametrize("text", ["uniform:7~", "fps:3~", "every:13~", "keyframes"])
def test_windows_give_the_whole_sample(text):
    """The planner asks window by window: the union is the whole-video answer,
    which is the brute-force snap of the exact sample."""
    rng = np.random.default_rng(3)
    n = 5000
    keys = np.unique(np.concatenate([[0], rng.integers(1, n, 40)]))
    spec = SampleSpec.parse(text)
    whole = sample_indices(spec, n, 25.0, keys)
    cuts = np.unique(np.concatenate([[0, n], rng.integers(0, n, 30)]))
    windows = [sampled_in(spec, n, 25.0, int(lo), int(hi), keys)
               for lo, hi in itertools.pairwise(cuts)]
    assert np.concatenate(windows).tolist() == whole.tolist()
    if spec.approximate:
        targets = sample_indices(spec.exact, n, 25.0)
        brute = {int(keys[keys <= t].max()) for t in targets}
        assert whole.tolist() == sorted(brute)


@pytest.mark.parametrize("frame", [0, 1, 2, 5, 42, 74, 75, 76, 200])
def test_neighbours_near_the_ends_are_all_there_are(frame: int):
    """Fewer than asked near the start or end: every one there is, none lost."""
    spec = SampleSpec("all")
    before = sampled_before(spec, 233, 25.0, frame, 75)
    after = sampled_after(spec, 233, 25.0, frame, 74)
    assert before.tolist() == list(range(max(0, frame - 75), frame))
    assert after.tolist() == list(range(frame + 1, min(233, frame + 75)))
