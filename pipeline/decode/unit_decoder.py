"""Decode one WorkUnit: decord first, PyAV when decord cannot open the file, when
its container is one decord seeks wrongly in, or to confirm what decord calls corrupt.
With `--decode-device gpu`, NVDEC first where the video allows (gpu_routing.py).

Never raises for bad input: every failure becomes `DecodedUnit.error`.
"""

from __future__ import annotations

import importlib
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from pipeline.config import DEFAULT_MAX_FRAME_PIXELS, DecodeDevice, FrameSize
from pipeline.decode.containers import why_not_decord
from pipeline.decode.decoded_unit import DecodedUnit
from pipeline.decode.decord_decoder import CorruptVideoError, DecordOpenError, decode_with_decord
from pipeline.decode.keyframe_decoder import KeyframeMissed, decode_keyframes
from pipeline.decode.local_copy import local_path
from pipeline.decode.pyav_decoder import FrameTooLarge, decode_with_pyav
from pipeline.plan.probe import ffmpeg_reason
from pipeline.plan.work_unit import WorkUnit
from pipeline.storage_options import StorageOptions
from pipeline.storage_problems import storage_errors

log = logging.getLogger(__name__)

KEYFRAME_DECODER = "pyav-keyframes"  # videos.decoder of units decoded a keyframe at a time
FrameDecoder = Callable[["DecodeSettings", WorkUnit, str], DecodedUnit]


@dataclass(frozen=True)
class DecodeSettings:
    """What a decode worker needs; small and picklable (no open handles)."""

    size: FrameSize
    threads: int = 1
    fault_tolerance: float = 0.0
    prefer_gpu: bool = False
    device: DecodeDevice = "cpu"  # "gpu": NVDEC where the video allows (gpu_routing.py)
    storage: StorageOptions = field(default_factory=StorageOptions)
    max_frame_pixels: int = DEFAULT_MAX_FRAME_PIXELS  # a bigger picture fails its unit
    index_keyframes: bool = False  # probes index keyframes (a sample needs them)
    # "module:function" replacing `decode_frames` (fault injection in tests,
    # or a custom decoder); resolved inside the worker.
    decoder_path: str | None = None


def decode_frames(settings: DecodeSettings, unit: WorkUnit, path: str) -> DecodedUnit:
    """Decode `unit` from the local file `path`: keyframes alone when it reads
    only keyframes, else decord where it is exact, else PyAV."""
    indices = np.asarray(unit.frame_indices, np.int64)
    size = unit.size or settings.size
    decoder = "pyav"
    try:
        if unit.keyframes_only and (alone := _keyframes_alone(settings, unit, path)):
            return alone
        if (reason := why_not_decord(path)) is None:
            frames, kept, stamps, count = decode_with_decord(
                path, indices, size, threads=settings.threads,
                fault_tolerance=settings.fault_tolerance, prefer_gpu=settings.prefer_gpu)
            decoder = "decord"
        else:
            log.info("%s: %s; decoding with PyAV", unit.video.uri, reason)
            frames, kept, stamps, count = decode_with_pyav(
                path, indices, size, threads=settings.threads,
                max_pixels=settings.max_frame_pixels)
    except DecordOpenError as exc:
        log.info("decord cannot open %s (%s); falling back to PyAV", unit.video.uri, exc)
        frames, kept, stamps, count = decode_with_pyav(path, indices, size,
                                                       threads=settings.threads,
                                                       max_pixels=settings.max_frame_pixels)
    except CorruptVideoError as exc:
        # decord's seek can land in the wrong GOP of a file with no exact index
        # (MPEG-TS: frames 18 then 28 of a sound file), and its fault check then
        # calls good frames corrupt. PyAV decodes forward, exactly: only when it
        # fails too is the video corrupt.
        log.info("decord: %s in %s; decoding it with PyAV", exc, unit.video.uri)
        frames, kept, stamps, count = _pyav_confirming(path, indices, size, settings, exc)
    return decoded_unit(unit, indices, (frames, kept, stamps, count), decoder)


def decoded_unit(unit: WorkUnit, indices: np.ndarray,
                 result: tuple[np.ndarray, np.ndarray, np.ndarray, int],
                 decoder: str) -> DecodedUnit:
    """A decoder's (frames, kept, timestamps, count) as a DecodedUnit; an error
    when fewer frames than `indices` came back."""
    frames, kept, stamps, count = result
    decoded = DecodedUnit(unit=unit, frames=frames, frame_indices=kept, timestamps_s=stamps,
                          decoder=decoder, decoder_n_frames=count)
    if kept.size < indices.size:
        missing = indices.size - kept.size
        decoded.error = (f"truncated or corrupt: {missing} of {indices.size} sampled frames "
                         f"(from frame {int(indices[kept.size])}) could not be decoded")
    return decoded


def _keyframes_alone(settings: DecodeSettings, unit: WorkUnit, path: str,
                     ) -> DecodedUnit | None:
    """`unit` decoded one keyframe packet per frame, or None when a frame cannot be
    reached that way (the exact path decodes it)."""
    indices = np.asarray(unit.frame_indices, np.int64)
    try:
        result = decode_keyframes(path, indices, unit.size or settings.size,
                                  max_pixels=settings.max_frame_pixels)
    except KeyframeMissed as exc:
        log.info("%s: %s; decoding its GOPs", unit.video.uri, exc)
        return None
    return decoded_unit(unit, indices, result, KEYFRAME_DECODER)


def _pyav_confirming(path: str, indices: np.ndarray, size: FrameSize, settings: DecodeSettings,
                     corrupt: CorruptVideoError,
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """decode_with_pyav, or `corrupt` (with PyAV's reason added) if PyAV fails too."""
    import av

    try:
        return decode_with_pyav(path, indices, size, threads=settings.threads,
                                max_pixels=settings.max_frame_pixels)
    except av.FFmpegError as exc:
        raise CorruptVideoError(f"{corrupt}; PyAV: {ffmpeg_reason(exc)}") from None


def _resolve(settings: DecodeSettings) -> FrameDecoder:
    path = settings.decoder_path
    if not path:
        if settings.device == "gpu":
            from pipeline.decode.gpu_routing import decode_frames_on_gpu

            return decode_frames_on_gpu
        return decode_frames
    module, _, name = path.partition(":")
    decoder: FrameDecoder = getattr(importlib.import_module(module), name)
    return decoder


def _decode_local(settings: DecodeSettings, unit: WorkUnit, path: str) -> DecodedUnit:
    """Decode `unit` from a local copy; decoding problems become an error record."""
    import av

    try:
        return _resolve(settings)(settings, unit, path)
    except CorruptVideoError as exc:
        return DecodedUnit.failed(unit, str(exc), decoder="decord")
    except FrameTooLarge as exc:
        return DecodedUnit.failed(unit, str(exc), decoder="pyav")
    except av.FFmpegError as exc:
        reason = f"not decodable by decord or PyAV: {ffmpeg_reason(exc)}"
        return DecodedUnit.failed(unit, reason, "pyav")
    except (OSError, ValueError, EOFError) as exc:
        # Malformed data that the demuxer rejects, a file gone mid-read: specific
        # to this video, recorded, not raised.
        return DecodedUnit.failed(unit, f"cannot read: {type(exc).__name__}: {exc}")


def _fetch_failure(exc: BaseException) -> str:
    if isinstance(exc, FileNotFoundError):
        return "object not found (deleted after listing?)"
    return f"cannot fetch: {type(exc).__name__}: {exc}"


def decode_units(settings: DecodeSettings, units: list[WorkUnit]) -> list[DecodedUnit]:
    """Decode units in order (one decode task's work). Consecutive units of the
    same video share one local copy: a long video on S3 is fetched once per
    task, not once per unit."""
    if settings.device == "gpu":
        from pipeline.decode.gpu_routing import require_nvdec

        require_nvdec()  # systemic: raised here, outside the per-video error handling
    decoded: list[DecodedUnit] = []
    for uri, group in itertools.groupby(units, key=lambda u: u.video.uri):
        batch = list(group)
        try:
            with local_path(uri, settings.storage, batch[0].video.etag) as path:
                decoded.extend(_decode_local(settings, unit, path) for unit in batch)
        except storage_errors() as exc:
            # Unreadable object or permission denied mid-run: this video's problem.
            decoded.extend(DecodedUnit.failed(u, _fetch_failure(exc)) for u in batch
                           if u.unit_id not in {d.unit.unit_id for d in decoded})
    return decoded


def decode_unit(settings: DecodeSettings, unit: WorkUnit) -> DecodedUnit:
    """Fetch (if remote) and decode one unit; bad input becomes an error record."""
    return decode_units(settings, [unit])[0]
