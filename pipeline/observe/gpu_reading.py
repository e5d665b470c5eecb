"""Reading a model actor's GPU after a call (nothing on CPU-only actors)."""

from __future__ import annotations

import logging
import sys

from pipeline.observe.work_times import GpuReading

log = logging.getLogger(__name__)


def read_gpu() -> GpuReading | None:
    """The current CUDA device's utilisation (0-1; None where NVML cannot be
    read) and its peak allocated bytes since the last reading; None when this
    process has not used CUDA (torch not imported, or no GPU)."""
    torch = sys.modules.get("torch")  # never import torch here: decode processes lack it
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return None
    try:
        percent = float(torch.cuda.utilization())  # NVML, through pynvml when installed
        utilisation: float | None = min(max(percent / 100.0, 0.0), 1.0)
    except Exception as exc:
        # Broad on purpose: torch.cuda.utilization() raises ModuleNotFoundError
        # without pynvml, and pynvml's NVMLError subclasses (driver too old, no
        # permission) are not importable without it. Any of them only loses this
        # one figure: recorded, and the memory figure still counts.
        log.debug("no GPU utilisation reading: %s: %s", type(exc).__name__, exc)
        utilisation = None
    memory = int(torch.cuda.max_memory_allocated())
    torch.cuda.reset_peak_memory_stats()
    return GpuReading(utilisation, memory)
