"""The driver side of `vidlake train`: labelled data in, a TorchTrainer run out.

Lists and probes the labelled videos (bad ones are skipped and reported),
splits them, checks the output, and runs Ray Train's TorchTrainer with
`train_worker` on `num_workers` workers (DDP: gloo on CPU, nccl on GPU).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from pipeline.config import SampleSpec
from pipeline.corpus.listing import list_corpus
from pipeline.corpus.video_ref import VideoRef
from pipeline.errors import ConfigError, StorageError
from pipeline.storage import join, write_atomic
from pipeline.storage_options import StorageOptions
from pipeline.storage_problems import storage_errors
from pipeline.training.checkpoints import latest_checkpoint, model_uri
from pipeline.training.class_balance import check_balance, class_counts
from pipeline.training.finetune import FineTuneFlags
from pipeline.training.job import Optimization, TrainJob
from pipeline.training.labelled import LabelledVideo, label_names, load_labelled
from pipeline.training.model_shape import ModelShape, check_trainable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """What `vidlake train` was asked to do."""

    source: str
    output: str
    shape: ModelShape
    optim: Optimization = field(default_factory=Optimization)
    num_workers: int = 1
    use_gpu: bool = False
    resume: bool = False
    val_fraction: float = 0.2
    hflip: bool = False  # opt-in: a flip can change what a clip shows (left <-> right)
    flip_swaps: tuple[tuple[str, str], ...] = ()
    cpus_per_worker: float = 0.0  # 0: share the cluster's CPUs between workers and decoding
    address: str | None = None
    storage: StorageOptions = field(default_factory=StorageOptions)
    sample: SampleSpec | None = None  # clips are cut from these frames; None: every frame
    class_balance: str = "none"  # none | sampler | loss
    select_by: str = "top1"  # top1 | macro_f1: which validation score picks model.pt
    finetune: FineTuneFlags = field(default_factory=FineTuneFlags)
    # ModelShape fields the user did not set: a vidlake --init-weights may set them
    shape_defaulted: tuple[str, ...] = ()


@dataclass
class TrainSummary:
    """What a finished run produced."""

    model_uri: str
    best_val_acc: float
    best_epoch: int
    select_by: str
    best_macro_f1: float | None
    epochs: int
    history: list[dict[str, Any]]
    train_videos: int
    val_videos: int
    bad_videos: list[tuple[str, str]]
    init_line: str | None = None  # what --init-weights loaded (InitReport.line)


def _refs(source: str, storage: StorageOptions) -> dict[str, VideoRef]:
    """Size and etag of every listed video (a manifest's missing object gets
    etag 'missing', which the probe reports)."""
    return {r.uri: r for r in list_corpus(source, storage)}


def _items(videos: list[LabelledVideo], refs: dict[str, VideoRef],
           names: list[str]) -> list[dict[str, Any]]:
    return [{"uri": v.uri, "size_bytes": refs[v.uri].size_bytes, "etag": refs[v.uri].etag,
             "label": names.index(v.label), "split": v.split} for v in videos]


def _flip_pairs(swaps: tuple[tuple[str, str], ...], names: list[str]) -> tuple[
        tuple[int, int], ...]:
    unknown = sorted({n for pair in swaps for n in pair} - set(names))
    if unknown:
        raise ConfigError(f"--hflip-swap names unknown classes {unknown}; classes: {names}")
    return tuple((names.index(a), names.index(b)) for a, b in swaps)


def _check_output(config: TrainConfig) -> None:
    """Fail fast: checkpoints in the output without --resume (or none with it)."""
    latest = latest_checkpoint(config.output, config.storage)
    if latest and not config.resume:
        raise ConfigError(f"{config.output!r} already holds training checkpoints ({latest}); "
                          "pass --resume to continue that run, or choose another --output")
    if config.resume and not latest:
        log.warning("--resume: no checkpoint in %s yet, starting from epoch 1", config.output)


def _write_config(config: TrainConfig) -> None:
    """OUT/train_config.json, once every check passed: also the first write, so
    an unwritable output fails here, before any Ray work."""
    record = {k: v for k, v in asdict(config).items() if k != "storage"}
    try:
        write_atomic(join(config.output, "train_config.json"),
                     json.dumps(record, indent=2, default=str).encode(), config.storage)
    except storage_errors() as exc:
        raise StorageError(f"cannot write to --output {config.output!r}: {exc}") from None


def _check_resumed(config: TrainConfig, finetune: dict[str, Any] | None) -> None:
    """A resumed run keeps the choices its checkpoints were made with: the
    --select-by that chose model.pt, and the --init-weights file and freeze
    and learning-rate settings its optimizer state was built for."""
    from pipeline.training.checkpoints import load_training_state

    latest = latest_checkpoint(config.output, config.storage)
    if not (config.resume and latest):
        return
    state = load_training_state(latest, config.storage)
    chosen = state.get("select_by", "top1")
    if chosen != config.select_by:
        raise ConfigError(f"the run in {config.output!r} chose model.pt by --select-by "
                          f"{chosen}; resume it with --select-by {chosen}")
    started = state.get("finetune")
    if started != finetune:
        raise ConfigError(f"the run in {config.output!r} started with fine-tuning settings "
                          f"{_finetune_text(started)}, not {_finetune_text(finetune)}; resume "
                          "it with the same --init-weights file, --freeze, --unfreeze-after "
                          "and --backbone-lr-scale")


def _finetune_text(record: dict[str, Any] | None) -> str:
    if record is None:
        return "none (no --init-weights)"
    return ", ".join(f"{k}={v}" for k, v in record.items())


def _scaling(config: TrainConfig) -> tuple[Any, int]:
    """(ScalingConfig, torch threads per worker). Workers leave a share of the
    CPUs to the decode tasks, so a small machine never deadlocks on CPUs."""
    import ray
    from ray.train import ScalingConfig

    resources = ray.cluster_resources()
    if config.use_gpu and resources.get("GPU", 0) < config.num_workers:
        raise ConfigError(f"--use-gpu with {config.num_workers} workers, but the Ray cluster "
                          f"has {resources.get('GPU', 0):g} GPUs")
    cpus = config.cpus_per_worker or min(
        4.0, max(0.25, (resources.get("CPU", 1) - 0.5) / config.num_workers))
    per_worker: dict[str, float] = {"CPU": cpus}
    if config.use_gpu:
        per_worker["GPU"] = 1
    return (ScalingConfig(num_workers=config.num_workers, use_gpu=config.use_gpu,
                          resources_per_worker=per_worker), max(1, math.floor(cpus)))


def _start(config: TrainConfig, names: list[str]) -> tuple[ModelShape, Any]:
    """(the shape to train, a PretrainedStart or None): --init-weights loaded,
    matched to the model and checked, before any Ray work."""
    from pipeline.training.init_weights import inherited_shape, pretrained_start
    from pipeline.training.trainable import Trainable

    uri = config.finetune.init_weights
    if uri is None:
        return config.shape, None
    import torch

    from pipeline.models.checkpoint import load_weights

    weights = load_weights(uri, config.storage)
    shape = inherited_shape(config.shape, config.shape_defaulted, weights)
    if shape != config.shape:
        log.info("--init-weights %s: input and clip as it was trained: %s", uri, shape)
    check_trainable(shape.arch)
    torch.manual_seed(config.optim.seed)  # the new layers as a run without it starts them
    start = pretrained_start(Trainable(shape, len(names)), tuple(names), weights,
                             config.finetune, uri)
    log.info("%s", start.report.line())
    return shape, start


def prepare_job(config: TrainConfig) -> tuple[TrainJob, list[tuple[str, str]], Any]:
    """The TrainJob (probed, split items), the videos skipped as unusable, and
    the PretrainedStart of --init-weights (None without)."""
    from pipeline.runner.ray_session import start_ray
    from pipeline.training.clip_dataset import probe_items
    from pipeline.training.trainable import Trainable

    check_trainable(config.shape.arch)
    videos = load_labelled(config.source, config.storage, config.val_fraction)
    names = label_names(videos)
    if len(names) < 2:
        raise ConfigError(f"{config.source!r} has a single class ({names}); need at least 2")
    shape, start = _start(config, names)
    Trainable(shape, 2).check_input()
    _check_resumed(config, start.finetune.record() if start else None)
    _write_config(dataclasses.replace(config, shape=shape))  # the shape trained
    start_ray(config.address, dashboard=True)
    good, bad = probe_items(_items(videos, _refs(config.source, config.storage), names),
                            config.storage,
                            keyframes=bool(config.sample and config.sample.needs_keyframes))
    for uri, reason in bad:
        log.warning("skipping %s: %s", uri, reason)
    train = [{k: v for k, v in i.items() if k != "split"} for i in good if i["split"] == "train"]
    val = [{k: v for k, v in i.items() if k != "split"} for i in good if i["split"] == "val"]
    if len(train) < config.num_workers or not val:
        raise ConfigError(f"{len(train)} training and {len(val)} validation videos are usable: "
                          "too few (add videos, a split column, or change --val-fraction)")
    check_balance(config.class_balance, class_counts([i["label"] for i in train], len(names)),
                  names)
    job = TrainJob(config.output, shape, tuple(names), train, val, config.optim,
                   config.hflip, _flip_pairs(config.flip_swaps, names), config.storage,
                   config.sample, config.class_balance, config.select_by,
                   start.finetune if start else None)
    return job, bad, start


def _train_worker_from_store(config: dict[str, Any]) -> None:
    """Ray Train's train_loop_per_worker: `train_worker` with config["job"], an
    ObjectRef of the TrainJob, and config["init"], an ObjectRef of the initial
    state_dict (None without --init-weights), fetched from the object store."""
    import ray

    from pipeline.training.worker_loop import train_worker

    init = config["init"]
    train_worker({**config, "job": ray.get(config["job"]),
                  "init": None if init is None else ray.get(init)})


def run_training(config: TrainConfig) -> TrainSummary:
    """Train, checkpoint every epoch, export the best model; ConfigError or
    StorageError before any work when the setup cannot succeed."""
    import ray
    from ray.train import FailureConfig, RunConfig
    from ray.train.torch import TorchTrainer

    from pipeline.training.checkpoints import load_training_state

    config.finetune.check(config.optim.epochs)
    _check_output(config)
    job, bad, start = prepare_job(config)
    log.info("training %s on %d videos (%d classes), validating on %d; %d skipped",
             config.shape.arch, len(job.train_items), len(job.label_names), len(job.val_items),
             len(bad))
    scaling, threads = _scaling(config)
    # The job goes through the object store: Ray Train records train_loop_config as
    # text in its run state (the dashboard's Train page), and the job holds the
    # storage options (credentials) and every item.
    job_ref = ray.put(job)
    init_ref = None if start is None else ray.put(start.state)
    TorchTrainer(_train_worker_from_store,
                 train_loop_config={"job": job_ref, "init": init_ref, "threads": threads},
                 scaling_config=scaling,
                 # A failed worker group restarts once and resumes from the newest checkpoint.
                 run_config=RunConfig(failure_config=FailureConfig(max_failures=1))).fit()
    latest = latest_checkpoint(config.output, config.storage)
    if latest is None:
        raise RuntimeError("training finished without writing a checkpoint")
    state = load_training_state(latest, config.storage)
    history = list(state["history"])
    best = next(r for r in history if r["epoch"] == int(state["best_epoch"]))
    return TrainSummary(model_uri(config.output), float(best["val_acc"]), int(best["epoch"]),
                        config.select_by, best.get("val_macro_f1"), int(state["epoch"]),
                        history, len(job.train_items), len(job.val_items), bad,
                        start.report.line() if start else None)
