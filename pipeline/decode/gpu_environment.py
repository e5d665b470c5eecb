"""Whether `--decode-device gpu` can work here, decided before any work.

GPU decode needs the `gpu` extra (NVIDIA's PyNvVideoCodec) and a CUDA device
in the process that decodes. Which process that is depends on the engine: the
driver itself (`--engine sequential`), or the Ray inference actors, each
holding a GPU, with `--decode in-actor`. Decode tasks (`--decode workers`)
hold no GPU, so that shape is refused rather than left to decode on CPU.

The checks are plain functions of what was found, so the rules are tested
on machines without a GPU; `gpu_decode_problem` gathers the facts.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os

from pipeline.config import ExecutionSpec

EXTRA_HINT = "install the gpu extra: pip install 'vidlake[gpu]'"


def extra_installed() -> bool:
    """True when PyNvVideoCodec can be found. Found, not imported: importing it
    asks the driver for its NVENC version and raises on a machine without one."""
    return importlib.util.find_spec("PyNvVideoCodec") is not None


def cuda_device_count() -> int:
    """CUDA devices this process may use (CUDA_VISIBLE_DEVICES honoured), from the
    driver library itself: 0 without libcuda or without a device. No torch
    import (the driver stays light)."""
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return 0
    count = ctypes.c_int(0)
    if cuda.cuInit(0) != 0 or cuda.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return 0
    return int(count.value)


def joins_cluster(execution: ExecutionSpec) -> bool:
    """True when the run joins a Ray cluster (its GPUs are elsewhere)."""
    return execution.engine == "ray" and bool(execution.address or os.environ.get("RAY_ADDRESS"))


def gpu_decode_refusal(execution: ExecutionSpec, *, extra: bool, cuda_devices: int) -> str | None:
    """Why `--decode-device gpu` cannot be honoured with `execution` on a machine
    with (or without) the extra and `cuda_devices` devices, or None. A joined
    cluster's GPUs are checked there: by the engine (the cluster's GPU count)
    and by the actors (the extra and NVDEC, on their first unit)."""
    if execution.decode_device != "gpu":
        return None
    if execution.engine == "ray" and execution.decode != "in-actor":
        return ("--decode-device gpu decodes inside the GPU inference actors: add --decode "
                "in-actor (decode workers hold no GPU)")
    if joins_cluster(execution):
        return None
    if not extra:
        return f"--decode-device gpu needs NVIDIA's PyNvVideoCodec: {EXTRA_HINT}"
    if cuda_devices < 1:
        return ("--decode-device gpu needs a CUDA device and none is visible here (no NVIDIA "
                "driver, or CUDA_VISIBLE_DEVICES hides them); use --decode-device cpu")
    return None


def gpu_decode_problem(execution: ExecutionSpec) -> str | None:
    """gpu_decode_refusal with the facts of this machine (looked up only when
    GPU decode is asked for)."""
    if execution.decode_device != "gpu":
        return None
    return gpu_decode_refusal(execution, extra=extra_installed(),
                              cuda_devices=cuda_device_count())


def cluster_gpu_refusal(execution: ExecutionSpec, gpus: int) -> str | None:
    """Why a Ray cluster with `gpus` GPUs cannot decode on GPU, or None."""
    if execution.decode_device == "gpu" and gpus < 1:
        return ("--decode-device gpu: the Ray cluster has no GPU (its nodes report none); "
                "use --decode-device cpu or add GPU nodes")
    return None
