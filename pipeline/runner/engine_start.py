"""Starting a run's engine, and starting it early.

A run's start-up is Ray's start (seconds of CPU on a small machine) and each
model actor's `import torch` and weights (seconds more). Both overlap with
what the driver does anyway when the engine starts first: the listing's
thread (runner/listing_feed.py) lists SOURCE while Ray starts in the main
one (`ray.init` in a thread lost Ray's GCS when tried), and the driver plans
and probes while the actors load. The lake's lock is taken before any of it,
so a busy lake starts nothing.

Only a run that cannot be a no-op starts early: one whose lake has no commit
yet (everything SOURCE lists is to do). Otherwise the engine starts with the
first video to do, so a run with nothing to do (a nightly relabel of an
unchanged corpus) never starts Ray. An engine started for nothing (SOURCE
empty) is closed at once: its actors are killed, not waited for.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from pipeline.analyses.base import Analysis
from pipeline.analyses.factory import build_analysis
from pipeline.analyses.resolve import ResolvedAnalysis
from pipeline.config import FrameSize, LabelConfig
from pipeline.decode.unit_decoder import DecodeSettings
from pipeline.plan.planner import decode_size
from pipeline.runner.engine import Engine

log = logging.getLogger(__name__)

EngineFactory = Callable[[LabelConfig, list[Analysis], DecodeSettings], Engine]


def decode_settings(config: LabelConfig, resolved: list[ResolvedAnalysis]) -> DecodeSettings:
    """Decode settings of the run; `size` is the largest fixed analysis size (each
    unit carries the size its video is decoded at)."""
    size = decode_size([r.spec.size for r in resolved if r.spec.size] or [FrameSize(224, 224)])
    return DecodeSettings(size=size, threads=config.execution.decoder_threads,
                          fault_tolerance=config.fault_tolerance,
                          prefer_gpu=config.execution.decode == "in-actor",
                          device=config.execution.decode_device,
                          storage=config.storage,
                          max_frame_pixels=config.execution.max_frame_pixels,
                          index_keyframes=any(r.spec.sample and r.spec.sample.needs_keyframes
                                              for r in resolved),
                          decoder_path=config.execution.decoder_path)


def build_analyses(config: LabelConfig, resolved: list[ResolvedAnalysis]) -> list[Analysis]:
    """The run's analysis objects (light: models load later, where they run)."""
    return [build_analysis(r, storage=config.storage,
                           threads=config.execution.inference_threads,
                           micro_batch=config.execution.batch_frames) for r in resolved]


@dataclass
class StartedEngine:
    """An engine whose models are loading (or loaded), and the analyses it runs."""

    engine: Engine
    analyses: list[Analysis]
    closed: bool = False

    def close(self) -> None:
        """Close the engine once (later calls do nothing)."""
        if not self.closed:
            self.closed = True
            self.engine.close()


def start_engine(config: LabelConfig, resolved: list[ResolvedAnalysis],
                 factory: EngineFactory) -> StartedEngine:
    """Make the engine (the Ray engine starts or joins Ray here) and have it begin
    loading the models where they run; closed again if that fails."""
    analyses = build_analyses(config, resolved)
    engine = factory(config, analyses, decode_settings(config, resolved))
    try:
        engine.start_analysis()
    except BaseException:
        # Broad on purpose: whatever stops the start (a bad model file, a
        # KeyboardInterrupt, a bug) must not leave the engine's Ray actors and
        # pools running; nothing is swallowed, the error is re-raised as is.
        engine.close()
        raise
    log.info("engine %s started: %s", engine.name, ", ".join(r.name for r in resolved))
    return StartedEngine(engine, analyses)
