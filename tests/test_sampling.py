"""Exact checks of the sampling rules."""

import numpy as np
import pytest

from pipeline.config import SampleSpec
from pipeline.errors import ConfigError
from pipeline.plan.sampling import sample_indices


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
