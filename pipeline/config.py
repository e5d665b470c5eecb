"""Typed, validated configuration of a labelling run.

Everything a run does is decided here, on the driver, before any work: a bad
flag fails fast with a message that says what to fix. The resolved config is
saved with each run in `runs.config` (credentials redacted).
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from pipeline.errors import ConfigError
from pipeline.storage import StorageOptions

SampleKind = Literal["uniform", "fps", "every", "all"]
DecodeShape = Literal["workers", "in-actor"]


@dataclass(frozen=True)
class SampleSpec:
    """Which frames of a video to analyse.

    - `uniform:N`: N frames at the centres of N equal segments of the video.
    - `fps:F`: F frames per second of video (by frame index at the average rate).
    - `every:K`: every K-th frame, starting at frame 0.
    - `all`: every frame.
    """

    kind: SampleKind
    value: float = 0.0

    @classmethod
    def parse(cls, text: str) -> SampleSpec:
        text = text.strip()
        if text == "all":
            return cls("all")
        kind, sep, raw = text.partition(":")
        if not sep or kind not in ("uniform", "fps", "every"):
            raise ConfigError(
                f"bad --sample {text!r}: use uniform:N, fps:F, every:K or all"
            )
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"bad --sample {text!r}: {raw!r} is not a number") from None
        if value <= 0 or (kind != "fps" and value != int(value)):
            raise ConfigError(
                f"bad --sample {text!r}: N and K must be positive integers, F a positive number"
            )
        return cls(kind, value)  # type: ignore[arg-type]

    def __str__(self) -> str:
        if self.kind == "all":
            return "all"
        value = int(self.value) if self.kind != "fps" else self.value
        return f"{self.kind}:{value}"


@dataclass(frozen=True)
class FrameSize:
    """Decoded frame size in pixels. Resizing happens on decode and stretches:
    the aspect ratio is not kept (decord's resize; see README design notes)."""

    width: int
    height: int

    @classmethod
    def parse(cls, text: str) -> FrameSize:
        match = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+))?\s*", text)
        if not match:
            raise ConfigError(f"bad --size {text!r}: use N (square) or WxH, e.g. 224 or 320x240")
        width = int(match.group(1))
        height = int(match.group(2) or width)
        if not (8 <= width <= 8192 and 8 <= height <= 8192):
            raise ConfigError(f"bad --size {text!r}: sides must be between 8 and 8192 pixels")
        return cls(width, height)

    def __str__(self) -> str:
        return f"{self.width}x{self.height}"


@dataclass(frozen=True)
class ModelSpec:
    """Which frame model to run and where its weights come from."""

    name: str
    weights_uri: str | None = None
    labels_uri: str | None = None
    top_k: int = 5
    embeddings: bool = False


@dataclass(frozen=True)
class ExecutionSpec:
    """How the run is spread over Ray (sizes in frames, times in seconds)."""

    decode: DecodeShape = "workers"
    decode_workers: int = 0  # 0: one per CPU not reserved for inference
    inference_actors: int = 0  # 0: one per GPU, or one on CPU
    inference_threads: int = 1  # torch threads of a CPU inference actor
    batch_frames: int = 64  # frames per inference call, across units
    buffer_mb: int = 512  # decoded frames waiting for inference, at most
    max_frames_per_unit: int = 128  # bounds memory per decode task
    decoder_threads: int = 1  # decord threads per worker, pinned (0 = auto is slower)
    unit_timeout_s: float = 120.0
    max_unit_attempts: int = 2  # retries after a worker crash
    address: str | None = None
    # "module:function" replacing the frame decoder (fault injection, custom decoders)
    decoder_path: str | None = None


@dataclass(frozen=True)
class LabelConfig:
    """The whole resolved configuration of `vidlake label`."""

    source: str
    output: str
    model: ModelSpec
    sample: SampleSpec = field(default_factory=lambda: SampleSpec("uniform", 8))
    size: FrameSize = field(default_factory=lambda: FrameSize(224, 224))
    execution: ExecutionSpec = field(default_factory=ExecutionSpec)
    storage: StorageOptions = field(default_factory=StorageOptions)
    fault_tolerance: float = 0.0  # share of frames decord may recover before a unit fails

    def to_json(self) -> str:
        """The config as JSON for `runs.config`, with credentials redacted."""
        data: dict[str, Any] = dataclasses.asdict(self)
        data["sample"] = str(self.sample)
        data["size"] = str(self.size)
        data["storage"] = self.storage.redacted()
        return json.dumps(data, sort_keys=True)
