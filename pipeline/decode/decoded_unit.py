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

    def take(self, indices: tuple[int, ...] | list[int]) -> np.ndarray:
        """Frames uint8 [len(indices), H, W, 3] of the given frame indices, in
        the order given (repeats allowed); every index must have been decoded."""
        positions = np.searchsorted(self.frame_indices, np.asarray(indices, np.int64))
        return self.frames[positions]

    def stamps(self, indices: tuple[int, ...] | list[int]) -> np.ndarray:
        """Timestamps (s) float64 [len(indices)] of the given frame indices."""
        return self.timestamps_s[np.searchsorted(self.frame_indices,
                                                 np.asarray(indices, np.int64))]

    @classmethod
    def failed(cls, unit: WorkUnit, error: str, decoder: str = "") -> DecodedUnit:
        return cls(unit=unit, frames=np.empty((0, 0, 0, 3), np.uint8),
                   frame_indices=np.empty(0, np.int64), timestamps_s=np.empty(0, np.float64),
                   decoder=decoder, error=error)
