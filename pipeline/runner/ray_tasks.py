"""What runs on Ray workers: probe and decode tasks, and the inference actor.

Nothing here schedules: the driver's scheduler (ray_engine.py) decides what
runs where and when, and kills what overstays (scheduling.py's deadlines).
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

import ray
from ray.exceptions import RayTaskError

from pipeline.analyses.base import Analysis
from pipeline.analyses.model_loader import ModelInfo
from pipeline.corpus.video_ref import VideoRef
from pipeline.decode.decoded_unit import DecodedUnit
from pipeline.decode.unit_decoder import DecodeSettings
from pipeline.errors import ConfigError, StorageError
from pipeline.observe.gpu_reading import read_gpu
from pipeline.observe.work_times import WorkTimes, elapsed_since
from pipeline.plan.probe import probe_videos
from pipeline.plan.video_info import VideoInfo
from pipeline.plan.work_unit import WorkUnit
from pipeline.runner.batch_result import DecodeReport, ModelRows, decode_stage, model_stage

PROBES_PER_TASK = 16  # header reads take milliseconds: batch them past task overhead


def raise_if_systemic(exc: BaseException) -> None:
    """Re-raise a task's ConfigError or StorageError plainly (storage went away
    mid-run: the run stops cleanly instead of failing its videos one by one)."""
    cause = exc.cause if isinstance(exc, RayTaskError) else exc
    if isinstance(cause, ConfigError | StorageError):
        raise type(cause)(str(cause)) from None


# num_cpus=0: probes must not wait behind actors that hold every CPU (in-actor
# decoding); the scheduler bounds how many run at once instead.
@ray.remote(num_cpus=0)
def probe_task(refs: list[VideoRef], storage: Any, max_frame_pixels: int,
               keyframes: bool) -> tuple[list[VideoInfo], WorkTimes]:
    start = time.perf_counter()
    infos = probe_videos(refs, storage, max_frame_pixels=max_frame_pixels, keyframes=keyframes)
    return infos, WorkTimes(probe_s=elapsed_since(start))


@ray.remote(num_cpus=1, num_returns=2, max_retries=0)  # the driver owns retries
def decode_task(settings: DecodeSettings, units: list[WorkUnit], on_decoder: list[Analysis],
                 ) -> tuple[tuple[list[DecodeReport], WorkTimes], list[DecodedUnit]]:
    """Decode units and run the model-free analyses next to the frames. Returns
    ((small reports, seconds spent), the frames): the driver reads the reports
    without fetching the frames, which go from the object store straight to
    the model actors."""
    times = WorkTimes()
    reports, decoded = decode_stage(settings, units, on_decoder, times)
    return (reports, times), decoded


class InferenceActor:
    """Holds the models of one or more analyses for its lifetime (loaded in
    __init__, inside the actor).

    Bad weights are kept as an error and raised by every call, rather than
    failing __init__: Ray reports a failed constructor as a dead actor and
    loses the reason, while a method's exception reaches the driver whole.
    """

    def __init__(self, analyses: list[Analysis]) -> None:
        self.analyses = analyses
        self.error: ConfigError | StorageError | None = None
        self.infos: dict[str, ModelInfo] = {}
        try:
            self.infos = {a.name: a.setup() for a in analyses}
        except (ConfigError, StorageError) as exc:
            self.error = exc

    def ready(self) -> dict[str, ModelInfo]:
        """What the models are, once loaded; raises the loading error if any."""
        if self.error is not None:
            raise self.error
        return self.infos

    def infer(self, unit_ids: set[str], *decoded: list[DecodedUnit],
              ) -> tuple[ModelRows, WorkTimes]:
        """Analyse the units `unit_ids` of several decode tasks' output in one
        batch; the rows, and the seconds each analysis took."""
        if self.error is not None:
            raise self.error
        times = WorkTimes()
        rows = model_stage(self.analyses, [d for part in decoded for d in part
                                           if d.unit.unit_id in unit_ids], times)
        times.gpu = read_gpu()
        return rows, times

    def decode_and_infer(self, settings: DecodeSettings, units: list[WorkUnit],
                         batch_frames: int, on_decoder: list[Analysis],
                         ) -> tuple[list[DecodeReport], ModelRows, WorkTimes]:
        """In-actor shape: a thread decodes ahead (bounded queue) while the models
        run; the reports, rows and the seconds each stage took."""
        if self.error is not None:
            raise self.error
        if settings.device == "gpu":
            from pipeline.decode.gpu_routing import require_nvdec

            require_nvdec()  # a ConfigError here stops the run (exit 2), before any decode
        ready: queue.Queue[tuple[list[DecodeReport], list[DecodedUnit]] | Exception | None] = \
            queue.Queue(maxsize=2)
        times = WorkTimes()  # decode fields written by the thread, analyses' by this one

        def produce() -> None:
            try:
                for unit in units:
                    ready.put(decode_stage(settings, [unit], on_decoder, times))
            except Exception as exc:  # handed to the caller, which raises it
                ready.put(exc)
                return
            ready.put(None)

        threading.Thread(target=produce, daemon=True, name="vidlake-prefetch").start()
        reports: list[DecodeReport] = []
        rows: ModelRows = {a.name: {} for a in self.analyses}
        pending: list[DecodedUnit] = []
        while True:
            item = ready.get()
            if isinstance(item, Exception):
                raise item  # a systemic error (ConfigError, StorageError) reaches the driver
            if item is not None:
                reports.extend(item[0])
                pending.extend(item[1])
            if pending and (item is None or sum(len(d.frames) for d in pending) >= batch_frames):
                for name, by_unit in model_stage(self.analyses, pending, times).items():
                    rows[name].update(by_unit)
                pending = []
            if item is None:
                times.gpu = read_gpu()
                return reports, rows, times
