"""ModelAnalysis: what every model-backed analysis shares.

Constructed light on the driver; `setup()` loads the model once inside the
actor that runs it, on the GPU when the actor has one.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pyarrow as pa

from pipeline.analyses.base import UnitRows
from pipeline.analyses.model_loader import ModelInfo, load_model
from pipeline.config import AnalysisSpec, FrameSize
from pipeline.decode.decoded_unit import DecodedUnit
from pipeline.lake.commit_record import UnitOutcome
from pipeline.plan.needs import analysis_size
from pipeline.plan.video_info import VideoInfo
from pipeline.plan.work_unit import AnalysisWork
from pipeline.storage_options import StorageOptions

log = logging.getLogger(__name__)


class ModelAnalysis:
    """Base of the frame, clip and detection analyses."""

    on_decoder = False
    # Frames per forward pass at most, unless the analysis's `batch` says otherwise.
    max_micro_batch = 256

    def __init__(self, name: str, spec: AnalysisSpec, *, storage: StorageOptions | None = None,
                 threads: int | None = None, micro_batch: int = 64) -> None:
        self.name = name
        self.spec = spec
        self.storage = storage or StorageOptions()
        self.threads = threads
        self.micro_batch = micro_batch
        self.info: ModelInfo | None = None  # known once setup() has loaded the weights
        self._model: Any = None
        self._device: Any = None

    @property
    def family(self) -> str:
        from pipeline.analyses.kinds import KINDS  # the registry imports this module

        family = KINDS[self.spec.kind].family
        if family is None:
            raise TypeError(f"{self.spec.kind} runs no model: it is not a ModelAnalysis")
        return family

    def build_options(self) -> dict[str, Any]:
        """Family options passed to the model builder (detector thresholds)."""
        return {}

    def setup(self) -> ModelInfo:
        """Validate and load the model once; raises ConfigError or StorageError
        for bad weights or labels."""
        import torch

        if self._model is not None and self.info is not None:
            return self.info
        if self.threads:
            torch.set_num_threads(self.threads)
        self._device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.info, model = self.load()
        self._model = self.prepare(model).to(self._device)
        log.info("%s: loaded %s (%s) on %s", self.name, self.info.arch, self.info.version,
                 self._device)
        return self.info

    def load(self) -> tuple[ModelInfo, Any]:
        """Hook: what the model is, and the eval-mode module on CPU (by default
        the --model/--weights of its family, see model_loader.py)."""
        return load_model(self.spec.model, self.storage, self.family, self.build_options())

    def prepare(self, model: Any) -> Any:
        """Hook: turn the loaded eval-mode model into the one that runs."""
        return model

    def loaded(self) -> ModelInfo:
        if self.info is None or self._model is None:
            return self.setup()
        return self.info

    def autocast(self) -> Any:
        """Mixed precision on GPU; full precision on CPU (bf16 there changes labels)."""
        import torch

        return torch.autocast(self._device.type, enabled=self._device.type == "cuda")

    def size_for(self, decoded: DecodedUnit) -> FrameSize:
        return analysis_size(self.spec, decoded.unit.source_size)

    def resized(self, frames: np.ndarray, size: FrameSize | None) -> Any:
        """uint8 [N, H, W, 3] -> float tensor [N, 3, h, w] on the device, 0..255,
        scaled to `size` (bilinear, antialiased) unless None or already that
        size. One decode serves several analyses, each at its own size."""
        import torch
        import torch.nn.functional as F

        batch = torch.from_numpy(np.ascontiguousarray(frames)).to(self._device, non_blocking=True)
        batch = batch.permute(0, 3, 1, 2).float()
        if size and batch.shape[-2:] != (size.height, size.width) and batch.shape[0]:
            batch = F.interpolate(batch, size=(size.height, size.width), mode="bilinear",
                                  antialias=True, align_corners=False)
        return batch

    def tail(self, n: int) -> dict[str, list[str]]:
        """model and model_version columns for `n` rows."""
        info = self.loaded()
        return {"model": [info.arch] * n, "model_version": [info.version] * n}

    def work(self, units: list[DecodedUnit]) -> list[tuple[DecodedUnit, AnalysisWork]]:
        """The decoded units that have work for this analysis."""
        out = []
        for decoded in units:
            work = decoded.unit.work_for(self.name)
            if decoded.ok and work is not None and len(decoded.frames):
                out.append((decoded, work))
        return out

    def process(self, units: list[DecodedUnit]) -> dict[str, UnitRows]:
        raise NotImplementedError

    def finish_video(self, info: VideoInfo, outcomes: list[UnitOutcome]) -> dict[str, pa.Table]:
        return {}
