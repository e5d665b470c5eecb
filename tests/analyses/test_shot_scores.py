"""PySceneDetect's pixel arithmetic without OpenCV: HSV and the bilinear
downscale bit-identical to cv2's, scores by hand, the scoring size rule, and
the video-level rules (flash filter, minimum length) on hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.analyses.shot_rules import adaptive_ratio, flash_merge, keep_min_length
from pipeline.analyses.shot_scores import content_scores, hsv_u8, resize_linear, score_size
from pipeline.config import FrameSize


@pytest.mark.parametrize("step", [pytest.param(1, marks=pytest.mark.slow), 37])
def test_hsv_is_opencvs_for_every_colour(step: int):
    """Every 24-bit colour (slow), or every 37th."""
    cv2 = pytest.importorskip("cv2")
    colours = np.arange(0, 1 << 24, step, dtype=np.uint32)
    rgb = np.stack([(colours >> 16) & 255, (colours >> 8) & 255, colours & 255], -1)
    rgb = rgb.astype(np.uint8).reshape(1, -1, 3)
    expected = cv2.cvtColor(np.ascontiguousarray(rgb[..., ::-1]), cv2.COLOR_BGR2HSV)
    assert np.array_equal(hsv_u8(rgb), expected)


@pytest.mark.parametrize("size", [(320, 180), (1920, 1080), (180, 320), (333, 777), (257, 100),
                                  (512, 288), (1000, 37), (258, 258)])
def test_downscale_is_opencvs_inter_linear(size):
    cv2 = pytest.importorskip("cv2")
    width, height = size
    frames = np.random.default_rng(width).integers(0, 256, (2, height, width, 3), np.uint8)
    small = score_size(width, height)
    expected = np.stack([cv2.resize(f, small, interpolation=cv2.INTER_LINEAR) for f in frames])
    assert np.array_equal(resize_linear(frames, FrameSize(*small)), expected)


def test_score_size_is_pyscenedetects():
    assert score_size(160, 90) == (160, 90)  # under 256: as decoded
    assert score_size(1920, 1080) == (256, 144)
    assert score_size(1080, 1920) == (144, 256)  # the longer side, portrait too
    assert score_size(300, 170) == (256, 145)


def test_scores_are_mean_hsv_differences_on_the_0_255_scale():
    hsv = np.zeros((3, 2, 2, 3), np.uint8)
    hsv[1, 0, 0] = (179, 10, 40)  # hue is not circular in PySceneDetect
    hsv[2] = hsv[1]
    scores = content_scores(hsv, first_is_start=True)
    assert scores.tolist() == [0.0, (179 / 4 + 10 / 4 + 40 / 4) / 3, 0.0]
    assert np.isnan(content_scores(hsv, first_is_start=False)[0])


def test_flash_merge_cuts_merges_and_drops():
    # nothing before merging is enabled: the first cut needs 15 frames since frame 0
    assert flash_merge([10, 30], 0, 100, 15) == [30]
    # a burst after a cut merges into one cut at its last above frame, once 15
    # quiet frames have passed and the burst spans 15 frames
    assert flash_merge([30, 33], 0, 100, 15) == [30]
    assert flash_merge([30, 40, 50, 55], 0, 100, 15) == [30, 55]
    assert flash_merge([30, 40, 50, 55], 0, 69, 15) == [30]  # the video ends first
    assert flash_merge([30, 40, 50, 55], 0, 71, 15) == [30, 55]
    assert flash_merge([3, 1, 2], 0, 10, 0) == [1, 2, 3]  # no minimum length


@pytest.mark.parametrize("seed", range(40))
def test_flash_merge_is_pyscenedetects_flash_filter(seed: int):
    """Random above-threshold frames through PySceneDetect's own FlashFilter,
    frame by frame, against flash_merge over the same frames."""
    pytest.importorskip("scenedetect")
    from scenedetect import FrameTimecode
    from scenedetect.detector import FlashFilter

    rng = np.random.default_rng(seed)
    n, min_len = int(rng.integers(20, 300)), int(rng.integers(1, 20))
    above = sorted(rng.choice(np.arange(1, n), int(rng.integers(0, n // 3)), replace=False))
    flags = np.zeros(n, bool)
    flags[above] = True
    flash = FlashFilter(FlashFilter.Mode.MERGE, min_len)
    expected = [int(c.frame_num) for f in range(n)
                for c in flash.filter(FrameTimecode(f, 25.0), bool(flags[f]))]
    assert flash_merge([int(a) for a in above], 0, n - 1, min_len) == expected


def test_keep_min_length_counts_from_the_last_kept_cut():
    cuts = [[14, 0.0, 1.0], [15, 0.0, 1.0], [29, 0.0, 1.0], [30, 0.0, 1.0]]
    assert [c[0] for c in keep_min_length(cuts, 0, 15)] == [15, 30]


def test_adaptive_ratio_needs_both_sides_and_caps():
    scores = np.array([0.0, 1.0, 9.0, 1.0, 1.0, 0.0, 0.0, 30.0, 0.0, 0.0])
    assert adaptive_ratio(scores, 2, 2, 15.0) == 9.0 / 0.75
    assert adaptive_ratio(scores, 1, 2, 15.0) is None  # too close to the start
    assert adaptive_ratio(scores, 8, 2, 15.0) is None  # too close to the end
    assert adaptive_ratio(scores, 7, 2, 15.0) == 255.0  # quiet neighbours, score >= 15
    assert adaptive_ratio(scores, 7, 2, 31.0) == 0.0
