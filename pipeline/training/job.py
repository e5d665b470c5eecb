"""TrainJob: everything a Ray Train worker needs, small and picklable."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipeline.config import SampleSpec
from pipeline.storage_options import StorageOptions
from pipeline.training.clip_sampling import ClipRecipe
from pipeline.training.finetune import FineTune
from pipeline.training.model_shape import ModelShape


@dataclass(frozen=True)
class Optimization:
    """AdamW with linear warmup over `warmup` of all steps, then cosine decay to 0;
    `batch_size` clips per worker per step.

    The defaults learn from scratch on a CPU: 8 clips a step take twice the
    steps of 16 for the same compute, and on a corpus of a few hundred
    videos the steps are what is short (docs/design.md#training)."""

    epochs: int = 10
    batch_size: int = 8
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup: float = 0.1
    seed: int = 0


@dataclass(frozen=True)
class TrainJob:
    """One training run: the data (probed items), the model and the schedule."""

    output: str
    shape: ModelShape
    label_names: tuple[str, ...]
    train_items: list[dict[str, Any]]
    val_items: list[dict[str, Any]]
    optim: Optimization = field(default_factory=Optimization)
    hflip: bool = False  # opt-in: a flip can change what a clip shows (left <-> right)
    flip_pairs: tuple[tuple[int, int], ...] = ()
    storage: StorageOptions = field(default_factory=StorageOptions)
    sample: SampleSpec | None = None
    class_balance: str = "none"  # none | sampler | loss (class_balance.py)
    select_by: str = "top1"  # top1 | macro_f1: the validation score that picks model.pt
    finetune: FineTune | None = None  # a run from --init-weights (finetune.py)

    def recipe(self, train: bool) -> ClipRecipe:
        width, height = self.shape.decode_size()
        return ClipRecipe(self.shape.clip_len, self.shape.frame_step, width, height,
                          augment=train, hflip=self.hflip, flip_pairs=self.flip_pairs,
                          sample=self.sample)
