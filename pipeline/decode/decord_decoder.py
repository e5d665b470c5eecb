"""Frame decoding with decord: sorted unique indices, resize on decode,
pinned threads, and a fault tolerance that turns corruption into an error.
decord turns frames upright by the video's display matrix."""

from __future__ import annotations

import logging
import re
from typing import Any

import numpy as np

from pipeline.config import FrameSize
from pipeline.decode.frame_geometry import resize_rgb

log = logging.getLogger(__name__)

_GPU_USABLE: bool | None = None  # decided once per process
# (path, width, height) decord's scaler gets wrong: later units decode at their own size
_WRONG_RESIZES: set[tuple[str, int, int]] = set()


class DecordOpenError(RuntimeError):
    """decord could not open the file (unsupported codec or container) or cannot
    give its frames at any size: try PyAV."""


class CorruptVideoError(RuntimeError):
    """Frames could not be decoded; the unit fails with this reason."""


def _fault_tol_arg(tolerance: float) -> float:
    """decord treats 0 as 'no check'; a tiny ratio means 'no recovered frame allowed'."""
    return tolerance if tolerance > 0 else 1e-9


def decord_context(prefer_gpu: bool) -> Any:
    """decord.gpu(0) when asked for and this decord build has NVDEC, else cpu(0)."""
    import decord

    global _GPU_USABLE
    if prefer_gpu and _GPU_USABLE is not False:
        try:
            ctx = decord.gpu(0)
            decord.nd.array(np.zeros(1, np.uint8), ctx=ctx)
            _GPU_USABLE = True
            return ctx
        except decord.DECORDError as exc:
            log.info("decord GPU decode unavailable (%s); decoding on CPU", exc)
            _GPU_USABLE = False
    return decord.cpu(0)


def decode_with_decord(path: str, indices: np.ndarray, size: FrameSize, *, threads: int,
                       fault_tolerance: float, prefer_gpu: bool = False,
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Decode `indices` (sorted, unique) of the video at `path`, upright.

    Returns (frames uint8 [F,H,W,3], kept indices int64 [F], timestamps_s
    float64 [F], decoder frame count). Indices at or beyond decord's frame
    count are dropped (the caller notes it). decord resizes on decode; for the
    output sizes its scaler gets wrong, frames come at their own size and are
    resized afterwards (frame_geometry).
    """
    wrong = (path, size.width, size.height)
    if wrong not in _WRONG_RESIZES:
        try:
            return _decode(path, indices, size, size, threads, fault_tolerance, prefer_gpu)
        except _ResizeBug:
            log.info("decord cannot resize %s to %s; resizing after decode", path, size)
            if len(_WRONG_RESIZES) >= 1024:
                _WRONG_RESIZES.clear()
            _WRONG_RESIZES.add(wrong)  # the video's next units skip the failing attempt
    try:
        return _decode(path, indices, None, size, threads, fault_tolerance, prefer_gpu)
    except _ResizeBug as exc:
        # its own size wrong too: decord 0.6 turning a 64x48 picture by 90 degrees
        raise DecordOpenError(f"decord sizes the frames wrongly: {exc}") from None


class _ResizeBug(RuntimeError):
    """decord's resize on decode produced a buffer of the wrong size."""


def _decode(path: str, indices: np.ndarray, decode_size: FrameSize | None, size: FrameSize,
            threads: int, fault_tolerance: float, prefer_gpu: bool,
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """One decord pass, resizing on decode to `decode_size` (None: the video's own
    size, then resized to `size` here)."""
    import decord

    try:
        reader = decord.VideoReader(
            path, ctx=decord_context(prefer_gpu), num_threads=threads,
            width=decode_size.width if decode_size else -1,
            height=decode_size.height if decode_size else -1,
            fault_tol=_fault_tol_arg(fault_tolerance))
    except (decord.DECORDError, RuntimeError) as exc:
        # decord raises a plain RuntimeError when FFmpeg cannot open the input
        raise DecordOpenError(_first_line(exc)) from None
    try:
        n_frames = len(reader)
        kept = indices[indices < n_frames]
        if kept.size == 0:
            return np.empty((0, size.height, size.width, 3), np.uint8), kept, \
                np.empty(0, np.float64), n_frames
        frames = _get_batch(reader, kept)
        wanted = (size.height, size.width) if decode_size else frames.shape[1:3]
        if frames.shape[1:] != (*wanted, 3):  # a 4-channel frame of a turned picture
            raise _ResizeBug(f"decord gave frames of {frames.shape[1:]} for {size}")
        stamps = reader.get_frame_timestamp(kept.tolist())[:, 0].astype(np.float64)
        return resize_rgb(frames, size), kept, stamps, n_frames
    finally:
        del reader


def _get_batch(reader: Any, kept: np.ndarray) -> np.ndarray:
    """Frames uint8 [F, H, W, C] of `kept`; decode failures become CorruptVideoError."""
    import decord

    try:
        frames: np.ndarray = reader.get_batch(kept.tolist()).asnumpy()
        return frames
    except decord.DECORDLimitReachedError as exc:
        raise CorruptVideoError(f"corrupt stream: {_first_line(exc)}") from None
    except decord.DECORDError as exc:
        detail = _first_line(exc)
        if "DECORDArrayCopyFromTo" in detail:  # its scaler's output size was wrong
            raise _ResizeBug(detail) from None
        if "avcodec_send_packet" in detail:  # FFmpeg refused a damaged packet
            raise CorruptVideoError(f"corrupt stream: the decoder rejected a packet "
                                    f"({detail})") from None
        raise CorruptVideoError(f"decode failed: {detail}") from None


_DECORD_PREFIX = re.compile(r"\[[0-9:]{8}\] [^ ]+:[0-9]+: ")


def _first_line(exc: BaseException) -> str:
    """decord's message without its '[time] /path/file.cc:line:' prefixes."""
    text = _DECORD_PREFIX.sub("", str(exc).strip())
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]
