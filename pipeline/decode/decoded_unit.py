"""DecodedUnit: a unit's frames, or the reason it has none."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipeline.plan.work_unit import WorkUnit


@dataclass
class DecodedUnit:
    """Frames of one WorkUnit.

    frames: uint8 [F, H, W, 3] RGB at the configured size; frame_indices:
    int64 [F]; timestamps_s: float64 [F] presentation times in seconds.
    On failure `error` holds a human-readable reason and `frames` is empty.
    """

    unit: WorkUnit
    frames: np.ndarray
    frame_indices: np.ndarray
    timestamps_s: np.ndarray
    decoder: str
    decoder_n_frames: int = 0  # frame count the decoder itself reports
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None

    @classmethod
    def failed(cls, unit: WorkUnit, error: str, decoder: str = "") -> DecodedUnit:
        return cls(unit=unit, frames=np.empty((0, 0, 0, 3), np.uint8),
                   frame_indices=np.empty(0, np.int64), timestamps_s=np.empty(0, np.float64),
                   decoder=decoder, error=error)
