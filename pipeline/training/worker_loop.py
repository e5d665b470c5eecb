"""The loop every Ray Train worker runs: DDP training, validation, checkpoints.

Each epoch a worker streams its shard of the reshuffled training items
through Ray Data (decoded clips, augmented), takes one AdamW step per
batch, recomputes the BatchNorm statistics on its last training clips
("precise BN", averaged over the workers: precise_bn.py), then validates
its shard of the centre clips. Rank 0 sums the workers' counts (and
the validation confusion matrix: per-class recall, macro-F1), writes the
checkpoint and the metrics table, and exports the model when the --select-by
score (validation top-1 or macro-F1) improves. --class-balance balances the
training draw (sampler) or the loss (loss): class_balance.py. A run from
--init-weights starts every worker from the same pretrained state, trains
the pretrained layers at a lower learning rate and can freeze the backbone
for its first epochs (finetune.py). On start a worker continues from
the newest checkpoint in the output, if any (the driver allows one only
with --resume, or when Ray Train restarts a failed worker group).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from pipeline.training.checkpoints import (
    export_model,
    latest_checkpoint,
    load_training_state,
    save_training_state,
)
from pipeline.training.class_balance import class_counts, loss_weights
from pipeline.training.clip_dataset import clip_batches, epoch_shard
from pipeline.training.finetune import param_groups, set_frozen
from pipeline.training.job import TrainJob
from pipeline.training.metrics_table import write_metrics
from pipeline.training.precise_bn import RecentClips, average_across_workers, recalibrate_bn
from pipeline.training.trainable import Trainable
from pipeline.training.val_scores import best_epoch, class_scores, recall_summary

log = logging.getLogger("vidlake.train")


@dataclass
class Tally:
    """Sums over one epoch's batches: loss (sum of unweighted cross-entropy over
    clips), correct, clips, skipped, and confusion int64 [K, K] (rows: true class)."""

    confusion: np.ndarray
    loss: float = 0.0
    correct: int = 0
    clips: int = 0
    skipped: int = 0

    @classmethod
    def empty(cls, n_classes: int) -> Tally:
        return cls(np.zeros((n_classes, n_classes), np.int64))

    def tensor(self, device: Any) -> torch.Tensor:
        """float64 [4 + K*K]: what the workers sum (one all-reduce)."""
        head = [self.loss, self.correct, self.clips, self.skipped]
        return torch.tensor(head + self.confusion.ravel().tolist(), dtype=torch.float64,
                            device=device)


def _confusion(values: list[float], n_classes: int) -> np.ndarray:
    """int64 [K, K] from a summed Tally.tensor."""
    return np.rint(np.asarray(values[4:])).astype(np.int64).reshape(n_classes, n_classes)


def warmup_cosine(total_steps: int, warmup_steps: int) -> Any:
    """LR factor per step: linear from ~0 to 1 over warmup, cosine to 0 after."""
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return factor


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def _all_sum(values: torch.Tensor) -> torch.Tensor:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(values)
    return values


class WorkerRun:
    """One worker's view of the run (rank, model, optimizer, schedule)."""

    def __init__(self, job: TrainJob, init: dict[str, torch.Tensor] | None = None) -> None:
        """`init`: the module's initial state_dict from --init-weights (None: random)."""
        import ray.train
        import ray.train.torch

        context = ray.train.get_context()
        self.job, self.rank, self.world = job, context.get_world_rank(), context.get_world_size()
        self.device = ray.train.torch.get_device()
        torch.manual_seed(job.optim.seed)  # the same initial weights on every worker
        self.trainable = Trainable(job.shape, len(job.label_names))
        if init is not None:
            self.trainable.module.load_state_dict(init)
        self.model = ray.train.torch.prepare_model(self.trainable.module)
        self.optimizer = torch.optim.AdamW(
            param_groups(self.trainable.module, job.optim.lr, job.finetune),
            lr=job.optim.lr, weight_decay=job.optim.weight_decay)
        steps = self.steps_per_epoch * job.optim.epochs
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, warmup_cosine(steps, max(1, round(job.optim.warmup * steps))))
        self.amp = self._amp_dtype()
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp == torch.float16)
        torch.manual_seed(job.optim.seed + 1 + self.rank)  # dropout differs per worker
        self.recent = RecentClips.for_clip_len(job.shape.clip_len)
        self.class_weights = self._class_weights()
        self.history: list[dict[str, Any]] = []
        self.best = (-1.0, 0)  # (--select-by score, epoch)
        self.start_epoch = self._resume()

    @property
    def steps_per_epoch(self) -> int:
        per_worker = len(self.job.train_items) // self.world
        return max(1, math.ceil(per_worker / self.job.optim.batch_size))

    def _class_weights(self) -> torch.Tensor | None:
        """float32 [K] cross-entropy weights with --class-balance loss, else None."""
        if self.job.class_balance != "loss":
            return None
        counts = class_counts([i["label"] for i in self.job.train_items],
                              len(self.job.label_names))
        return torch.tensor(loss_weights(counts), dtype=torch.float32, device=self.device)

    def _amp_dtype(self) -> torch.dtype | None:
        """Mixed precision on GPU: bfloat16 where supported, else float16 with a scaler."""
        if self.device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16

    def _resume(self) -> int:
        uri = latest_checkpoint(self.job.output, self.job.storage)
        if uri is None:
            return 0
        state = load_training_state(uri, self.job.storage)
        _unwrap(self.model).load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.history = list(state["history"])
        self.best = best_epoch(self.history, self.job.select_by)
        if self.rank == 0:
            log.info("resuming from %s (epoch %d of %d done)", uri, state["epoch"],
                     self.job.optim.epochs)
        return int(state["epoch"])

    def freeze_for(self, epoch: int) -> None:
        """Freeze or unfreeze the pretrained backbone as --freeze and
        --unfreeze-after say for 0-based `epoch`."""
        import ray.train.torch

        finetune = self.job.finetune
        if finetune is None:
            return
        frozen = finetune.frozen_in(epoch)
        if not set_frozen(self.trainable.module, finetune.backbone, frozen):
            return
        # DDP registers the parameters that take gradients when it wraps the
        # model: drop the old wrapper (and its gradient hooks) and wrap again.
        self.model = self.trainable.module
        self.model = ray.train.torch.prepare_model(self.trainable.module)
        if self.rank == 0:
            log.info("epoch %d: backbone %s", epoch + 1, "frozen" if frozen else "unfrozen")

    def _autocast(self) -> Any:
        if self.amp is None:
            return torch.autocast("cpu", enabled=False)
        return torch.autocast("cuda", dtype=self.amp)

    def _step(self, batch: dict[str, torch.Tensor], tally: Tally, train: bool,
              model: nn.Module) -> None:
        labels = batch["label"].to(self.device)
        ok = batch["ok"].to(self.device)
        with self._autocast():
            logits = model(self.trainable.inputs(batch["clip"].numpy(), self.device))
        losses = nn.functional.cross_entropy(logits.float(), labels, reduction="none")
        weights = ok.float()
        if train:
            # Class weights average 1 over the training set: dividing by the
            # clips (not by the weights' sum, as torch's "mean" does) keeps a
            # batch of majority clips from counting as much as a minority one.
            scale = weights if self.class_weights is None else weights * self.class_weights[labels]
            loss = (losses * scale).sum() / weights.sum().clamp(min=1.0)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
        tally.loss += float((losses.detach() * weights).sum())
        tally.correct += int(((logits.argmax(dim=1) == labels) & ok).sum())
        tally.clips += int(ok.sum())
        tally.skipped += int((~ok).sum())
        predicted = logits.argmax(dim=1)[ok].cpu().numpy()
        np.add.at(tally.confusion, (labels[ok].cpu().numpy(), predicted), 1)

    def _pass(self, epoch: int, train: bool) -> tuple[Tally, float]:
        """One pass over this worker's shard: (its tally, seconds)."""
        items = self.job.train_items if train else self.job.val_items
        shard = epoch_shard(items, epoch=epoch, seed=self.job.optim.seed, rank=self.rank,
                            world=self.world, shuffle=train,
                            balance=train and self.job.class_balance == "sampler")
        model = self.model if train else _unwrap(self.model)  # no DDP collectives in eval
        model.train(train)
        tally, start = Tally.empty(len(self.job.label_names)), time.perf_counter()
        with torch.set_grad_enabled(train):
            for batch in clip_batches(shard, self.job.recipe(train), self.job.storage,
                                      self.job.optim.batch_size):
                self._step(batch, tally, train, model)
                if train:
                    self.recent.add(batch["clip"].numpy(), batch["ok"].numpy())
        return tally, time.perf_counter() - start

    def _precise_bn(self) -> float:
        """Recompute BatchNorm statistics on this worker's last training clips
        with the epoch's final weights, averaged over workers; returns seconds."""
        start, module = time.perf_counter(), _unwrap(self.model)
        with self._autocast():
            recalibrate_bn(module, (self.trainable.inputs(clips, self.device)
                                    for clips in self.recent.batches(self.job.optim.batch_size)))
        average_across_workers(module)  # every worker calls it: it is a collective
        self.recent.clear()
        return time.perf_counter() - start

    def epoch(self, epoch: int) -> dict[str, Any]:
        """Train and validate epoch `epoch` (0-based); returns its metrics row."""
        self.freeze_for(epoch)
        train, seconds = self._pass(epoch, train=True)
        bn_seconds = self._precise_bn()
        val, _ = self._pass(epoch, train=False)
        t = _all_sum(train.tensor(self.device)).tolist()
        v = _all_sum(val.tensor(self.device)).tolist()
        return {
            "epoch": epoch + 1, "train_loss": t[0] / max(t[2], 1), "train_acc": t[1] / max(t[2], 1),
            "val_loss": v[0] / max(v[2], 1), "val_acc": v[1] / max(v[2], 1),
            "train_clips": int(t[2]), "val_clips": int(v[2]), "skipped": int(t[3] + v[3]),
            "clips_per_s": t[2] / max(seconds, 1e-9),
            "train_s": seconds, "precise_bn_s": bn_seconds, **self._rates(epoch),
            "workers": self.world, "select_by": self.job.select_by,
            **class_scores(_confusion(v, len(self.job.label_names)), self.job.label_names),
        }

    def _rates(self, epoch: int) -> dict[str, Any]:
        """The learning rates at the epoch's end (new layers; pretrained ones,
        None without --init-weights) and whether the backbone was frozen."""
        rates, finetune = self.scheduler.get_last_lr(), self.job.finetune
        return {"lr": rates[0], "backbone_lr": rates[-1] if len(rates) > 1 else None,
                "backbone_frozen": None if finetune is None else finetune.frozen_in(epoch)}

    def publish(self, row: dict[str, Any]) -> None:
        """Rank 0: checkpoint, metrics table, and the model when it is the best yet."""
        if self.rank != 0:
            return
        best = best_epoch([*self.history, row], self.job.select_by)
        row["exported"] = best[1] == row["epoch"]
        self.history.append(row)
        if row["exported"]:
            self.best = best
            self._export()
        save_training_state(self.job.output, row["epoch"], {
            "model": _unwrap(self.model).state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "history": self.history,
            "best_acc": self._best_row()["val_acc"], "best_epoch": self.best[1],
            "best_score": self.best[0], "select_by": self.job.select_by,
            "label_names": list(self.job.label_names), "trainable": self.trainable.config(),
            "finetune": self._finetune_record(),
        }, self.job.storage)
        write_metrics(self.job.output, self.history, self.job.storage)
        macro = row["val_macro_f1"]
        log.info("epoch %d/%d  train loss %.3f acc %.3f | val loss %.3f top-1 %.3f "
                 "macro-F1 %s %s | %.1f clips/s | skipped %d%s", row["epoch"],
                 self.job.optim.epochs, row["train_loss"], row["train_acc"], row["val_loss"],
                 row["val_acc"], "n/a" if macro is None else f"{macro:.3f}",
                 recall_summary(row["val_per_class"]), row["clips_per_s"], row["skipped"],
                 f"  (best by {self.job.select_by}: exported model.pt)" if row["exported"]
                 else "")

    def _finetune_record(self) -> dict[str, Any] | None:
        return None if self.job.finetune is None else self.job.finetune.record()

    def _best_row(self) -> dict[str, Any]:
        """The history row of the exported epoch."""
        return next(r for r in self.history if r["epoch"] == self.best[1])

    def _export(self) -> None:
        from pipeline.models.checkpoint import checkpoint_bytes

        state, config = self.trainable.export(_unwrap(self.model))
        if self.job.sample is not None and self.job.shape.family in ("rnn", "video"):
            # `vidlake label --weights` cuts its clips from the same frames
            config = {**config, "sample": str(self.job.sample)}
        export_model(self.job.output, checkpoint_bytes(
            arch=self.job.shape.arch, state_dict=state, label_names=list(self.job.label_names),
            config=config, trained={"val_acc": self._best_row()["val_acc"],
                                    "val_macro_f1": self._best_row()["val_macro_f1"],
                                    "epoch": self.best[1], "select_by": self.job.select_by,
                                    "finetune": self._finetune_record()}),
            self.job.storage)


def _quiet_reports() -> None:
    """Ray Train logs every report at INFO, with the whole metrics dict, and
    Ray Data every finished stream (two per epoch per worker); the epoch line
    says it better. (Ray Train's logger is named after its file.)"""
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    try:
        from ray.train.v2._internal.execution import context
    except ImportError:  # another Ray Train version: keep its logging
        return
    logging.getLogger(context.__file__).setLevel(logging.WARNING)


def train_worker(config: dict[str, Any]) -> None:
    """Ray Train's train_loop_per_worker: config["job"] is a TrainJob."""
    import ray.train

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    _quiet_reports()
    job: TrainJob = config["job"]
    torch.set_num_threads(max(1, int(config.get("threads", 1))))
    run = WorkerRun(job, config.get("init"))
    for epoch in range(run.start_epoch, job.optim.epochs):
        row = run.epoch(epoch)
        run.publish(row)
        ray.train.report({k: v for k, v in row.items() if isinstance(v, (int, float))})
