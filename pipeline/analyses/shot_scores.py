"""Content scores of consecutive frames, computed as PySceneDetect 0.7 does.

PySceneDetect's ContentDetector (scenedetect 0.7.2, read from its source)
scores a frame by how much it differs from the one before, in OpenCV's 8-bit
HSV: the mean over pixels of |dH|, |dS| and |dV|, averaged (weights 1, 1, 1;
edges weight 0), on frames first downscaled so the longer side is 256 pixels
(`cv2.resize`, INTER_LINEAR). The same integer arithmetic here, in numpy, so
scores are bit-identical without OpenCV (tests compare with cv2 where it is
installed): OpenCV's fixed-point bilinear resize and its table-driven
COLOR_BGR2HSV (H in 0..179).
"""

from __future__ import annotations

import numpy as np

from pipeline.config import FrameSize

SCORE_WIDTH = 256  # PySceneDetect's DEFAULT_MIN_WIDTH: the longer side is scaled to this
_COEF_SCALE = 2048  # OpenCV's INTER_RESIZE_COEF_SCALE (11 fractional bits)
_HSV_SHIFT = 12  # OpenCV's hsv_shift
_CHUNK = 1 << 17  # pixels per piece of work: int32 temporaries stay in cache


def score_size(width: int, height: int) -> tuple[int, int]:
    """(width, height) PySceneDetect scores a width x height frame at: unchanged
    when the longer side is under 256 pixels, else divided by longer/256 (a
    float factor) and rounded, as its SceneManager does."""
    longer = max(width, height)
    if longer < SCORE_WIDTH:
        return width, height
    factor = longer / float(SCORE_WIDTH)
    return max(1, round(width / factor)), max(1, round(height / factor))


def _taps(src: int, dst: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """OpenCV INTER_LINEAR taps along one axis: first and second source index,
    and their fixed-point weights (each rounded from float32, as OpenCV does)."""
    scale = 1.0 / (dst / src)
    pos = ((np.arange(dst, dtype=np.float64) + 0.5) * scale - 0.5).astype(np.float32)
    first = np.floor(pos).astype(np.int64)
    frac = (pos - first.astype(np.float32)).astype(np.float32)
    clamped = (first < 0) | (first >= src - 1)  # edges repeat the border pixel
    frac[clamped] = 0
    first = np.clip(first, 0, src - 1)
    w1 = np.rint(frac * np.float32(_COEF_SCALE)).astype(np.int64)
    w0 = np.rint((np.float32(1) - frac) * np.float32(_COEF_SCALE)).astype(np.int64)
    return first, np.minimum(first + 1, src - 1), w0, w1


def resize_linear(frames: np.ndarray, size: FrameSize) -> np.ndarray:
    """uint8 [N, H, W, C] -> uint8 [N, size.height, size.width, C], bit-identical
    to `cv2.resize(..., interpolation=cv2.INTER_LINEAR)` of each frame (no
    antialiasing: OpenCV's fixed-point rows, then its SIMD vertical pass).
    A few frames at a time: a full-size frame widened to int32 is 12 bytes a pixel."""
    n, height, width, channels = frames.shape
    if (width, height) == (size.width, size.height):
        return frames
    x0, x1, a0, a1 = (t.astype(np.int32) for t in _taps(width, size.width))
    y0, y1, b0, b1 = (t.astype(np.int32) for t in _taps(height, size.height))
    out = np.empty((n, size.height, size.width, channels), np.uint8)
    step = max(1, _CHUNK // max(1, height * size.width))  # cache-sized pieces
    for lo in range(0, n, step):
        chunk = frames[lo:lo + step]
        # horizontal pass (weights x 2048), then OpenCV's vertical fixed-point rounding
        rows = chunk[:, :, x0].astype(np.int32) * a0[:, None] + \
            chunk[:, :, x1].astype(np.int32) * a1[:, None]
        rows >>= 4
        top = (rows[:, y0] * b0[:, None, None]) >> 16
        top += (rows[:, y1] * b1[:, None, None]) >> 16
        top += 2
        top >>= 2
        out[lo:lo + step] = np.clip(top, 0, 255)
    return out


def _division_table(numerator: int, scale: float) -> np.ndarray:
    """int64 [256]: round(numerator / (scale * i)), 0 for i = 0 (OpenCV's tables)."""
    i = np.arange(256, dtype=np.float64)
    return np.where(i > 0, np.rint(numerator / (scale * np.maximum(i, 1))), 0).astype(np.int64)


_SAT_DIV = _division_table(255 << _HSV_SHIFT, 1.0)
_HUE_DIV = _division_table(180 << _HSV_SHIFT, 6.0)


def hsv_u8(frames: np.ndarray) -> np.ndarray:
    """uint8 RGB [..., 3] -> uint8 HSV [..., 3], bit-identical to OpenCV's
    COLOR_BGR2HSV of the same pixels in BGR order (H 0..179, S and V 0..255)."""
    flat = frames.reshape(-1, 3)
    out = np.empty_like(flat)
    for lo in range(0, len(flat), _CHUNK):
        out[lo:lo + _CHUNK] = _hsv_pixels(flat[lo:lo + _CHUNK])
    return out.reshape(frames.shape)


def _hsv_pixels(frames: np.ndarray) -> np.ndarray:
    rgb = frames.astype(np.int32)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    value = np.maximum(np.maximum(r, g), b)
    spread = value - np.minimum(np.minimum(r, g), b)
    half = 1 << (_HSV_SHIFT - 1)
    saturation = (spread * _SAT_DIV[value] + half) >> _HSV_SHIFT
    hue = np.where(value == r, g - b, np.where(value == g, b - r + 2 * spread,
                                                 r - g + 4 * spread))
    hue = (hue * _HUE_DIV[spread] + half) >> _HSV_SHIFT
    hue = np.where(hue < 0, hue + 180, hue)
    return np.stack([hue, saturation, value], axis=-1).astype(np.uint8)


def scoring_frames(frames: np.ndarray) -> np.ndarray:
    """uint8 RGB [N, H, W, 3] -> uint8 HSV [N, h, w, 3] at PySceneDetect's
    scoring size (score_size)."""
    width, height = score_size(frames.shape[2], frames.shape[1])
    return hsv_u8(resize_linear(frames, FrameSize(width, height)))


def content_scores(hsv: np.ndarray, first_is_start: bool) -> np.ndarray:
    """float64 [N]: each frame's content score against the frame before, on
    PySceneDetect's 0-255 scale: (mean |dH| + mean |dS| + mean |dV|) / 3, in
    its order of float operations. The first frame scores 0.0 when it starts
    the video (`first_is_start`: PySceneDetect's first frame), else NaN
    (a context frame whose predecessor this unit did not read)."""
    scores = np.full(len(hsv), np.nan, np.float64)
    if len(hsv) and first_is_start:
        scores[0] = 0.0
    if len(hsv) < 2:
        return scores
    pixels = float(hsv.shape[1] * hsv.shape[2])
    sums = np.empty((len(hsv) - 1, 3), np.int64)
    for i in range(1, len(hsv)):  # a frame pair at a time: its temporaries stay in cache
        diff = np.abs(hsv[i].astype(np.int16) - hsv[i - 1].astype(np.int16))
        sums[i - 1] = diff.reshape(-1, 3).sum(axis=0, dtype=np.int64)  # exact
    means = sums / pixels
    scores[1:] = (means[:, 0] + means[:, 1] + means[:, 2] + 0.0) / 3.0
    return scores
