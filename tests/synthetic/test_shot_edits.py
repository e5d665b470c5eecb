"""Generated edits: frames of the asked size and count, and the truth of where
their transitions are."""

from __future__ import annotations

import numpy as np

from pipeline.synthetic.shot_edits import Shot, edit_frames


def test_truth_and_frames_of_an_edit():
    shots = [Shot(10, flashes=((2, 2),)), Shot(12, content="pan", into="dissolve",
                                                  transition=8), Shot(6, into="fade",
                                                                      transition=9), Shot(5)]
    frames, truth = edit_frames(shots, height=90, width=150, seed=3)
    video = np.stack(list(frames))
    assert truth.cuts == [10] and truth.gradual == [(22, 29), (36, 44)]
    assert truth.n_frames == len(video) == 10 + 12 + 8 + 6 + 9 + 5
    assert video.shape[1:] == (90, 150, 3)
    assert video[2].mean() > 200 and video[3].mean() > 200  # the flash
    assert video[40].mean() < 30  # the middle of the fade is near black
