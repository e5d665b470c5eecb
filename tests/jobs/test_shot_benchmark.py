"""The shot benchmark's scoring protocol on hand-made predictions."""

from __future__ import annotations

from jobs.shot_benchmark import match, score

TRUTH = {"a.mp4": {"cuts": [10, 40], "gradual": [[20, 29]], "n_frames": 60}}


def test_a_cut_matches_within_one_frame_and_once():
    assert match([(11, 11), (12, 12)], [(10, 10)]) == [((11, 11), (10, 10)), ((12, 12), None)]
    assert match([(8, 8)], [(10, 10)]) == [((8, 8), None)]


def test_gradual_transitions_match_by_overlap():
    assert match([(30, 30)], [(20, 29)]) == [((30, 30), (20, 29))]  # the first frame after
    assert match([(15, 21)], [(20, 29)]) == [((15, 21), (20, 29))]


def test_scores_per_class():
    result = score({"a.mp4": [(10, 10), (25, 25), (50, 50)]}, TRUTH)
    assert result["hard"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5}
    assert result["gradual"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    assert result["all"]["recall"] == round(2 / 3, 3)
