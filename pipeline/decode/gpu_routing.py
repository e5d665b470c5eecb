"""`--decode-device gpu`: each video goes to NVDEC when its probed stream and this
GPU's NVDEC allow it (nvdec_support.why_not_nvdec), else to the CPU decoders
(decord, PyAV) as without the flag. A unit NVDEC fails on is decoded on CPU
too. `videos.decoder` says which decoded ("nvdec", or "decord"/"pyav" for a
fallback); the reason for a fallback is logged and kept in the unit's notes.
"""

from __future__ import annotations

import logging

import numpy as np

from pipeline.decode.decoded_unit import DecodedUnit
from pipeline.decode.gpu_environment import cuda_device_count
from pipeline.decode.nvdec_support import stream_facts, why_not_nvdec
from pipeline.decode.pyav_decoder import FrameTooLarge
from pipeline.decode.unit_decoder import DecodeSettings, decode_frames, decoded_unit
from pipeline.errors import ConfigError
from pipeline.plan.work_unit import WorkUnit

log = logging.getLogger(__name__)

_CHECKED = False  # the process's NVDEC was found usable (checked once per process)


def require_nvdec() -> None:
    """ConfigError (systemic: the run stops, exit 2) when this process cannot
    decode on the GPU: no PyNvVideoCodec, no driver, no CUDA device."""
    global _CHECKED
    if _CHECKED:
        return
    from pipeline.decode.nvdec_decoder import nvc_module

    nvc_module()
    if cuda_device_count() < 1:
        raise ConfigError("--decode-device gpu: this decoding process sees no CUDA device "
                          "(a Ray worker without a GPU, or CUDA_VISIBLE_DEVICES empty)")
    _CHECKED = True


def decode_frames_on_gpu(settings: DecodeSettings, unit: WorkUnit, path: str) -> DecodedUnit:
    """Decode `unit` from the local file `path` with NVDEC, or on CPU when the
    video is not one NVDEC decodes exactly (the reason is logged and noted)."""
    from pipeline.decode.nvdec_decoder import NvdecFailed, decode_with_nvdec, nvdec_limits

    indices = np.asarray(unit.frame_indices, np.int64)
    size = unit.size or settings.size
    facts = stream_facts(path)
    reason = why_not_nvdec(facts, lambda: nvdec_limits(path))
    if reason is None and facts is not None:
        try:
            result = decode_with_nvdec(path, indices, size, facts,
                                       max_pixels=settings.max_frame_pixels)
            return decoded_unit(unit, indices, result, "nvdec")
        except NvdecFailed as exc:
            reason = f"NVDEC failed: {exc}"
        except FrameTooLarge as exc:
            return DecodedUnit.failed(unit, str(exc), decoder="nvdec")
    log.info("%s: %s; decoding on CPU", unit.video.uri, reason)
    decoded = decode_frames(settings, unit, path)
    decoded.notes.append(f"decoded on CPU: {reason}")
    return decoded
