"""Frame decoding on the GPU with NVDEC, through NVIDIA's PyNvVideoCodec (the
`gpu` extra), behind the same contract as decode_with_decord/decode_with_pyav.

Imported only in a process that decodes with `--decode-device gpu`; it
imports PyNvVideoCodec and torch lazily, and only jobs/nvdec_check.py
exercises it (on a GPU machine). Nothing here has run on a GPU yet.

PyNvVideoCodec 2.2.4, as READ from its wheel (SimpleDecoder.py, the samples,
the strings of its extension module), not run:
- `SimpleDecoder(path, gpu_id=0, use_device_memory=True,
  output_color_type=OutputColorType.RGB)`; `len(decoder)` is the header's
  frame count; `get_batch_frames_by_index(indices)` drops indices out of
  range (with a warning), sorts and de-duplicates them, and returns one
  DecodedFrame per index kept, in the order given.
- A DecodedFrame exports DLPack (`__dlpack__`, `__dlpack_device__`); with RGB
  output `torch.from_dlpack(frame)` is a uint8 [H, W, 3] CUDA tensor
  (samples/utils/Utils.py, convert_frames_to_torch).
- `CreateDemuxer(filename=...)` gives `GetNvCodecId()`, `ChromaFormat()`,
  `BitDepth()`; `GetDecoderCaps(gpuid=, codec=, chromaformat=, bitdepth=)`
  returns a dict whose keys include num_decoder_engines, width_min,
  height_min, width_max, height_max, mb_num_max when NVDEC takes the stream
  (samples/advanced/decode.py tests `"num_decoder_engines" in caps`).
- Errors raise PyNvVCException / PyNvVCExceptionUnsupported, or
  RuntimeError (C++ exceptions translated by pybind11).
Unknown until a GPU run: whether frame i here is frame i of a forward PyAV
decode after seeks, NVDEC's RGB conversion against swscale's, and 10-bit
input with RGB output (a frame that is not uint8 [H, W, 3] is refused).

Timestamps do not come from NVDEC: frame i's time is the i-th smallest packet
pts of the stream minus its start, as PyAV's path counts it (StreamFacts).
Frames are resized on the GPU (bilinear, antialiased), then turned upright by
the display matrix, as frame_geometry.upright_rgb does on CPU.
"""

from __future__ import annotations

import functools
import os
import threading
from typing import Any

import numpy as np

from pipeline.config import FrameSize
from pipeline.decode.frame_geometry import quarter_turns
from pipeline.decode.nvdec_support import NvdecLimits, StreamFacts, frame_times_s
from pipeline.decode.pyav_decoder import FrameTooLarge
from pipeline.errors import ConfigError, one_line

# Frames fetched (and resized) per call: bounds GPU memory to this many
# full-size RGB pictures whatever the unit's length (a 4K picture is 25 MB).
CHUNK_FRAMES = 16

_LOCK = threading.Lock()  # one decoder per process; the prefetch thread and the caller share it
_DECODER: dict[str, Any] = {}  # "key" -> (path, size, mtime), "decoder" -> SimpleDecoder


class NvdecFailed(RuntimeError):
    """NVDEC could not decode this unit as asked: the CPU decoders take it."""


def nvc_module() -> Any:
    """PyNvVideoCodec, imported; ConfigError (systemic) when it is missing or
    cannot reach an NVIDIA driver."""
    try:
        import PyNvVideoCodec
    except ImportError:
        raise ConfigError("--decode-device gpu needs NVIDIA's PyNvVideoCodec in the decoding "
                          "process: install the gpu extra: pip install 'vidlake[gpu]'") from None
    except RuntimeError as exc:  # its import asks the driver for its NVENC version
        first = one_line(str(exc).split("=== TROUBLESHOOTING")[0])[:200]
        raise ConfigError(f"--decode-device gpu: PyNvVideoCodec cannot reach an NVIDIA "
                          f"driver here ({first}); use --decode-device cpu") from None
    return PyNvVideoCodec


def library_errors() -> tuple[type[BaseException], ...]:
    """What PyNvVideoCodec raises when it cannot decode a stream."""
    nvc = nvc_module()
    named = (getattr(nvc, n, None) for n in ("PyNvVCException", "PyNvVCExceptionUnsupported"))
    return (RuntimeError, *(e for e in named if isinstance(e, type)))


def nvdec_limits(path: str) -> NvdecLimits | None:
    """This GPU's NVDEC limits for the stream at `path` (its codec, chroma format
    and bit depth as NVIDIA's demuxer reads them), or None when NVDEC does not
    take it."""
    nvc = nvc_module()
    try:
        demuxer = nvc.CreateDemuxer(filename=path)
        # enum values as the demuxer gives them, passed on as the sample does
        key = (demuxer.GetNvCodecId(), demuxer.ChromaFormat(), demuxer.BitDepth())
    except library_errors():
        return None
    finally:
        demuxer = None  # closes the file before decoding opens it again
    return _caps(*key)


@functools.lru_cache(maxsize=64)
def _caps(codec: Any, chroma: Any, bit_depth: Any) -> NvdecLimits | None:
    try:
        caps = nvc_module().GetDecoderCaps(gpuid=0, codec=codec, chromaformat=chroma,
                                           bitdepth=bit_depth)
    except library_errors():
        return None
    engines, width_max = _cap(caps, "num_decoder_engines"), _cap(caps, "width_max")
    if not engines or not width_max:
        return None
    return NvdecLimits(min_width=_cap(caps, "width_min"), min_height=_cap(caps, "height_min"),
                       max_width=width_max, max_height=_cap(caps, "height_max"),
                       max_macroblocks=_cap(caps, "mb_num_max") or 1 << 31)


def _cap(caps: Any, key: str) -> int:
    """One value of GetDecoderCaps' answer: a dict as read (the sample tests `key
    in caps`), read as attributes too in case it is an object; 0 when absent."""
    value = caps.get(key, 0) if isinstance(caps, dict) else getattr(caps, key, 0)
    return int(value or 0)


def decode_with_nvdec(path: str, indices: np.ndarray, size: FrameSize, facts: StreamFacts, *,
                      max_pixels: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Decode `indices` (sorted, unique) on the GPU; decode_with_decord's return
    shape: frames uint8 [F, size.height, size.width, 3] upright, kept int64
    [F], timestamps_s float64 [F] from the stream start, and the stream's frame
    count (its packets). NvdecFailed when NVDEC fails or hands back frames that
    are not what was asked; FrameTooLarge for a picture over `max_pixels`."""
    count = facts.packet_frames
    kept = indices[indices < count]
    stamps = frame_times_s(facts, kept)
    if stamps is None:
        raise NvdecFailed("its frame times do not name frames")
    out = np.empty((kept.size, size.height, size.width, 3), np.uint8)
    with _LOCK:
        decoder = _decoder_for(path)
        for start in range(0, kept.size, CHUNK_FRAMES):
            chunk = kept[start : start + CHUNK_FRAMES]
            out[start : start + chunk.size] = _chunk(decoder, chunk, size, facts, max_pixels)
    return out, kept, stamps, count


def _decoder_for(path: str) -> Any:
    """A SimpleDecoder of `path`, reused across the units of one video (opening
    one costs a decoder session)."""
    nvc = nvc_module()
    stat = os.stat(path)
    key = (path, stat.st_size, stat.st_mtime_ns)
    if _DECODER.get("key") != key:
        _DECODER.clear()  # the old session is released before the new one starts
        try:
            _DECODER["decoder"] = nvc.SimpleDecoder(
                path, gpu_id=0, use_device_memory=True,
                output_color_type=nvc.OutputColorType.RGB)
        except library_errors() as exc:
            raise NvdecFailed(f"cannot open: {one_line(str(exc))[:200]}") from None
        _DECODER["key"] = key
    return _DECODER["decoder"]


def _chunk(decoder: Any, chunk: np.ndarray, size: FrameSize, facts: StreamFacts,
           max_pixels: int) -> np.ndarray:
    """Frames uint8 [len(chunk), H, W, 3] of `chunk`, resized and upright, on the host."""
    import torch

    try:
        frames = decoder.get_batch_frames_by_index([int(i) for i in chunk])
        if len(frames) != chunk.size:
            raise NvdecFailed(f"{len(frames)} frames for {chunk.size} indices")
        turns = quarter_turns(facts.rotation)
        width, height = (size.height, size.width) if turns % 2 else (size.width, size.height)
        batch = torch.stack([_resized(torch.from_dlpack(frame), int(i), facts, width, height,
                                      max_pixels) for frame, i in zip(frames, chunk, strict=True)])
        if turns:
            batch = torch.rot90(batch, turns, dims=(1, 2))
        return np.ascontiguousarray(batch.cpu().numpy())
    except (NvdecFailed, FrameTooLarge):
        raise
    except library_errors() as exc:  # the library's, and torch's (CUDA out of memory...)
        raise NvdecFailed(one_line(str(exc))[:200]) from None


def _resized(frame: Any, index: int, facts: StreamFacts, width: int, height: int,
             max_pixels: int) -> Any:
    """One decoded picture as uint8 [height, width, 3], still on the GPU. The
    picture itself is checked, not the header: uint8 [H, W, 3], within the
    pixel limit, and the stream's size (a picture of another size, cropped
    differently or after a mid-stream change, sends the unit to the CPU)."""
    import torch
    import torch.nn.functional as F

    if frame.dtype != torch.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise NvdecFailed(f"frame {index} came as {frame.dtype} {tuple(frame.shape)}, not "
                          "uint8 [H, W, 3] RGB")
    h, w = int(frame.shape[0]), int(frame.shape[1])
    if h * w > max_pixels:
        raise FrameTooLarge(f"frame {index} is {w}x{h} pixels, over the limit of {max_pixels} "
                            "(--max-frame-pixels)")
    if (w, h) != (facts.width, facts.height):
        raise NvdecFailed(f"frame {index} is {w}x{h}, the stream {facts.width}x{facts.height}")
    if (h, w) == (height, width):
        return frame
    chw = frame.permute(2, 0, 1).unsqueeze(0).float()
    small = F.interpolate(chw, size=(height, width), mode="bilinear", align_corners=False,
                          antialias=h > height or w > width)
    return small.round().clamp(0, 255).to(torch.uint8).squeeze(0).permute(1, 2, 0)
