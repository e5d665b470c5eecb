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
from pipeline.storage_options import StorageOptions
from pipeline.values import BadValue, integer, number

SampleKind = Literal["uniform", "fps", "every", "all", "keyframes"]
DecodeShape = Literal["workers", "in-actor"]
DecodeDevice = Literal["cpu", "gpu"]
EngineName = Literal["ray", "sequential"]
DEFAULT_MAX_FRAME_PIXELS = 8192 * 8192  # a video with bigger pictures is an error row
MAX_SAMPLE_FPS = 10_000.0  # fps:F above any real frame rate means every frame anyway


@dataclass(frozen=True)
class SampleSpec:
    """Which frames of a video to analyse.

    - `uniform:N`: N frames at the centres of N equal segments of the video.
    - `fps:F`: F frames per second of video (by frame index at the average rate).
    - `every:K`: every K-th frame, starting at frame 0.
    - `all`: every frame.
    - `keyframes`: every keyframe (each decoded alone, without its GOP).
    - a trailing `~` (`uniform:8~`, `fps:1~`, `every:K~`): approximate; each
      target frame is replaced by the keyframe at or before it, so a sampled
      frame costs one decoded picture, not a GOP. Tables record the frame used.
    """

    kind: SampleKind
    value: float = 0.0
    approximate: bool = False  # snapped to keyframes (`~`)

    @classmethod
    def parse(cls, text: str) -> SampleSpec:
        text = text.strip()
        if text in ("all", "keyframes"):
            return cls(text)  # type: ignore[arg-type]
        exact = text.removesuffix("~")
        kind, sep, raw = exact.partition(":")
        if not sep or kind not in ("uniform", "fps", "every"):
            raise ConfigError(f"bad --sample {text!r}: use uniform:N, fps:F, every:K, all or "
                              "keyframes; add ~ to snap uniform, fps or every to keyframes")
        parse = number(0, MAX_SAMPLE_FPS, above=True) if kind == "fps" else integer(1, 10**9)
        try:
            value = float(parse(raw))
        except BadValue as exc:
            raise ConfigError(f"bad --sample {text!r}: {exc}") from None
        return cls(kind, value, approximate=exact != text)  # type: ignore[arg-type]

    @property
    def needs_keyframes(self) -> bool:
        """Whether planning needs the video's keyframe positions."""
        return self.kind == "keyframes" or self.approximate

    @property
    def exact(self) -> SampleSpec:
        """The targets an approximate spec snaps to keyframes."""
        return dataclasses.replace(self, approximate=False)

    def __str__(self) -> str:
        if self.kind in ("all", "keyframes"):
            return self.kind
        value = int(self.value) if self.kind != "fps" else self.value
        return f"{self.kind}:{value}{'~' if self.approximate else ''}"


@dataclass(frozen=True)
class FrameSize:
    """Decoded frame size in pixels. Resizing happens on decode and stretches:
    the aspect ratio is not kept (decord's resize; see docs/design.md)."""

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
class ClipSpec:
    """Clips of `clip_len` frames taken every `frame_step` frames.

    Clip starts are `stride` frames apart from frame 0, or, with stride 0,
    `clips_per_video` clips centred in equal segments of the video.
    `clip_len` 0 means the model's documented clip length, `frame_step` 0 the
    step a trained checkpoint was trained with (else 1).
    """

    clip_len: int = 0
    frame_step: int = 0
    clips_per_video: int = 1
    stride: int = 0


@dataclass(frozen=True)
class ResourceSpec:
    """Ray resources of one analysis's actors; 0 means the engine's default."""

    actors: int = 0
    num_gpus: float = 0.0  # per actor, when the cluster has GPUs (fractions share one)
    num_cpus: float = 0.0
    batch: int = 0  # frames (clips for clip_labels) per inference call


@dataclass(frozen=True)
class AnalysisSpec:
    """One analysis of a run: what it writes, with which model, on which frames.

    `options` is the kind's own options dataclass (pipeline/analyses/<kind>.py;
    its defaults when None). `size` None means the analysis's own default (224
    for frame models, the documented size for clip models, the video's aspect
    ratio for detectors, the video's own for shots); `outputs` are the tables it writes
    (frame models may write labels and embeddings from one forward pass).
    """

    kind: str
    model: ModelSpec = field(default_factory=lambda: ModelSpec("auto"))
    sample: SampleSpec | None = None  # None: the kind's default (uniform:8; all for shots)
    size: FrameSize | None = None
    options: Any = None
    resources: ResourceSpec = field(default_factory=ResourceSpec)
    outputs: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        from pipeline.analyses.kinds import kind_named  # the registry imports this module

        kind = kind_named(self.kind, "analysis")
        if self.options is None:
            object.__setattr__(self, "options", kind.default_options())
        elif type(self.options) is not kind.options:
            raise TypeError(f"{self.kind} takes {kind.options.__name__}, "
                            f"not {type(self.options).__name__}")
        if not self.outputs:  # its own table: the first it declares
            object.__setattr__(self, "outputs", (next(iter(kind.tables)),))

    def describe(self) -> dict[str, Any]:
        """JSON-able summary for `runs.config` (no storage options inside)."""
        data: dict[str, Any] = dataclasses.asdict(self)
        data["sample"] = str(self.sample) if self.sample else None
        data["size"] = str(self.size) if self.size else None
        return data


@dataclass(frozen=True)
class ExecutionSpec:
    """How the run is spread over Ray (sizes in frames, times in seconds)."""

    engine: EngineName = "ray"  # or "sequential": one process, no Ray (debugging)
    decode: DecodeShape = "workers"
    # "gpu": NVDEC through PyNvVideoCodec (the `gpu` extra) where a video allows
    # it, decord/PyAV otherwise (docs/operations.md, "GPU decode")
    decode_device: DecodeDevice = "cpu"
    decode_workers: int = 0  # 0: one per CPU not reserved for inference
    inference_actors: int = 0  # 0: one per GPU, or one on CPU
    inference_threads: int = 1  # torch threads of a CPU inference actor
    batch_frames: int = 64  # frames per inference call, across units
    buffer_mb: int = 512  # decoded frames waiting for inference, at most
    max_frames_per_unit: int = 128  # bounds memory per decode task
    decoder_threads: int = 1  # decord threads per worker, pinned (0 = auto is slower)
    unit_timeout_s: float = 120.0
    inference_timeout_s: float = 600.0  # one model call, from when its actor starts it
    max_unit_attempts: int = 2  # retries after a worker crash
    max_frame_pixels: int = DEFAULT_MAX_FRAME_PIXELS
    address: str | None = None
    # "module:function" replacing the frame decoder (fault injection, custom decoders)
    decoder_path: str | None = None


@dataclass(frozen=True)
class RunPolicy:
    """How a run treats earlier work and other runs (label and relabel share it).

    A failed video output is tried again by later runs until it has failed
    `max_attempts` times (then it is quarantined; `retry_failed` tries it
    anyway). `lock_wait_s`: how long to wait for another run's lease on the
    lake; `lock_ttl_s`: how long a lease outlives its holder's last heartbeat.
    `record_idle`: write a `runs` row even when there is nothing to do (a
    scheduled relabel, so every night shows up, and so a rollback to an
    already-computed version takes effect in the latest views).
    `compact_files`: compact a partition once it holds this many small files
    (0: never). `checkpoint_every`: fold the commit log into a checkpoint once
    this many commits are not in one (ParquetLake.checkpoint).
    """

    command: str = "label"
    max_attempts: int = 1
    retry_failed: bool = False
    lock_wait_s: float = 0.0
    lock_ttl_s: float = 60.0
    record_idle: bool = False
    compact_files: int = 0
    compact_target_mb: int = 128
    checkpoint_every: int = 100  # at most ~7 MB of records (256 units each) at a start


@dataclass(frozen=True)
class LabelConfig:
    """The whole resolved configuration of `vidlake label`."""

    source: str
    output: str
    model: ModelSpec = field(default_factory=lambda: ModelSpec("auto"))
    sample: SampleSpec | None = None  # None: the analysis's default (uniform:8)
    size: FrameSize | None = None  # None: the analysis's default (224 for frame models)
    execution: ExecutionSpec = field(default_factory=ExecutionSpec)
    storage: StorageOptions = field(default_factory=StorageOptions)
    fault_tolerance: float = 0.0  # share of frames decord may recover before a unit fails
    # Several analyses over one decode; empty: one analysis from model/sample/size
    # (frame_labels, or what a checkpoint's architecture implies).
    analyses: tuple[AnalysisSpec, ...] = ()
    # Run-wide analysis options the user gave (--max-boxes...): option -> value.
    # Each applies to every analysis of the run that has it, and must apply to one.
    run_options: tuple[tuple[str, Any], ...] = ()
    policy: RunPolicy = field(default_factory=RunPolicy)

    def to_json(self) -> str:
        """The config as JSON for `runs.config`, with credentials redacted."""
        data: dict[str, Any] = dataclasses.asdict(self)
        data["sample"] = str(self.sample) if self.sample else None
        data["size"] = str(self.size) if self.size else None
        data["storage"] = self.storage.redacted()
        data["analyses"] = [a.describe() for a in self.analyses]
        return json.dumps(data, sort_keys=True)
