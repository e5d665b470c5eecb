"""Train a video classifier with Ray Train, checkpointing to OUTPUT.

Usage:
    vidlake train SOURCE --output DIR --model NAME [--epochs N] [--num-workers N]
        [--use-gpu] [--resume] [--batch-size B] [--lr LR] [--seed S] [--clip-len T]
        [--clip-step K] [--size S] [--backbone NAME] [--pool-grid G] [--hflip]
        [--hflip-swap A=B] [--class-balance none|sampler|loss]
        [--select-by top1|macro_f1] [--init-weights URI] [--freeze none|backbone]
        [--unfreeze-after N] [--backbone-lr-scale F] ...

SOURCE is a manifest (Parquet or CSV with uri, label and an optional split)
or a folder per class (root/<label>/*.mp4), local or s3://. NAME is cnn_gru,
cnn_lstm, small_3d, r3d_18, mc3_18, r2plus1d_18, s3d, mvit_v2_s or a frame
CNN (resnet18, mobilenet_v3_small...). DIR gets checkpoints/ (every epoch), model.pt (the
best epoch by validation top-1, or macro-F1 with --select-by macro_f1:
`vidlake label --weights DIR/model.pt` needs no other flag) and the
training_metrics table (per-class validation recall, macro-F1).

--init-weights fine-tunes from a file you downloaded or trained (nothing is
downloaded): torchvision Kinetics-400 weights of a 3D CNN, ImageNet weights
of a frame CNN (also the CNN+RNN's --backbone), or a vidlake model.pt. The
classifier head is new for SOURCE's labels; the other tensors must fit.

Exit codes: 0 trained, 2 a problem found before training (bad flag, no
usable videos, unreachable storage, checkpoints in DIR without --resume),
1 training failed.
"""

from __future__ import annotations

import argparse
import sys

from jobs.label import interruptible
from jobs.logging_setup import configure
from pipeline.cli.parser import OneLineParser, add_storage_option
from pipeline.config import SampleSpec
from pipeline.errors import ConfigError, StorageError
from pipeline.storage import canonical_uri
from pipeline.storage_options import StorageOptions
from pipeline.training.class_balance import BALANCE_MODES
from pipeline.training.finetune import (
    DEFAULT_BACKBONE_LR_SCALE,
    FINETUNE_LR,
    FREEZE_MODES,
    FineTuneFlags,
)
from pipeline.training.job import Optimization
from pipeline.training.model_shape import (
    DEFAULT_BACKBONE,
    DEFAULT_CLIP_LEN,
    DEFAULT_FRAME_STEP,
    DEFAULT_POOL_GRID,
    DEFAULT_SIZE,
    LARGEST,
    TRAINABLE,
    ModelShape,
    arch_defaults,
)
from pipeline.training.train_run import TrainConfig, TrainSummary
from pipeline.training.val_scores import SELECT_BY, recall_summary
from pipeline.values import fraction, integer, number


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    optim = Optimization()  # the defaults live in one place: TrainJob's dataclasses
    parser = parser or OneLineParser(prog="vidlake train", description=__doc__,
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("source", metavar="SOURCE", help="manifest or folder-per-class root")
    parser.add_argument("--output", required=True, metavar="DIR", help="local folder or s3://")
    parser.add_argument("--model", required=True, choices=TRAINABLE, metavar="NAME",
                        help=f"architecture: {', '.join(TRAINABLE)}")
    parser.add_argument("--epochs", type=integer(1, 100_000), default=optim.epochs,
                        help="passes over the training videos (default %(default)s)")
    parser.add_argument("--num-workers", type=integer(1, 4096), default=1,
                        help="Ray Train workers (DDP)")
    parser.add_argument("--use-gpu", action="store_true", help="one GPU per worker, nccl, AMP")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the newest checkpoint in --output")
    parser.add_argument("--batch-size", type=integer(1, 65_536), default=optim.batch_size,
                        help="clips per worker per step (default %(default)s)")
    parser.add_argument("--lr", type=number(0, 10, above=True),
                        help=f"peak AdamW learning rate (default {optim.lr:g}; with "
                             f"--init-weights {FINETUNE_LR:g}, for the new layers)")
    parser.add_argument("--weight-decay", type=number(0, 10), default=optim.weight_decay)
    parser.add_argument("--warmup", type=fraction, default=optim.warmup,
                        help="fraction of the steps with linear warmup (then cosine)")
    parser.add_argument("--seed", type=integer(0, 2**32 - 1), default=0,
                        help="makes a CPU run reproducible")
    parser.add_argument("--clip-len", type=integer(1, LARGEST["clip_len"]),
                        help=f"frames per clip (default {DEFAULT_CLIP_LEN}, mvit_v2_s 16 (it "
                             "takes no other), or the --init-weights model.pt's)")
    parser.add_argument("--sample", metavar="SPEC",
                        help="frames clips are cut from: keyframes, uniform:N, fps:F, every:K "
                             "(~ snaps them to keyframes: fps:1~); a clip is --clip-len "
                             "consecutive frames of the sample, --clip-step apart in it "
                             "(default: every frame)")
    parser.add_argument("--clip-step", type=integer(1, LARGEST["frame_step"]),
                        help=f"frames between clip frames (default {DEFAULT_FRAME_STEP}, or "
                             "the --init-weights model.pt's)")
    parser.add_argument("--size", type=integer(0, LARGEST["size"]),
                        help=f"input side in pixels (default: CNN+RNN {DEFAULT_SIZE['rnn']}, "
                             f"3D CNNs {DEFAULT_SIZE['video']} (s3d 224, small_3d 64), frame "
                             f"CNNs {DEFAULT_SIZE['frame']}, or the --init-weights model.pt's; "
                             "3D CNNs but small_3d crop it from a resize 8/7 larger, at their "
                             "default the resize their Kinetics weights document)")
    parser.add_argument("--backbone",
                        help=f"CNN+RNN frame backbone: {DEFAULT_BACKBONE} (default, trains "
                             "from scratch on a CPU), resnet18, mobilenet_v3_small, "
                             "efficientnet_b0 (ImageNet weights: --init-weights)")
    parser.add_argument("--hidden-size", type=integer(1, LARGEST["hidden_size"]),
                        help="CNN+RNN hidden units (default 256)")
    parser.add_argument("--pool-grid", type=integer(1, LARGEST["pool_grid"]),
                        help=f"CNN+RNN: keep a GxG grid of features per frame (default "
                             f"{DEFAULT_POOL_GRID}: motion needs position; 1 = global pooling)")
    parser.add_argument("--init-weights", metavar="URI",
                        help="start from these weights (local or s3://; never downloaded): "
                             "a torchvision state_dict (Kinetics 3D CNN, ImageNet frame CNN "
                             "or CNN+RNN backbone) or a vidlake model.pt; the classifier "
                             "head is new for SOURCE's labels")
    parser.add_argument("--freeze", choices=FREEZE_MODES, default="none",
                        help="with --init-weights: backbone trains only the new layers "
                             "(the CNN+RNN's RNN and head, a CNN's head); default none")
    parser.add_argument("--unfreeze-after", type=integer(1, 100_000), default=0, metavar="N",
                        help="with --freeze backbone: train the backbone too from epoch N+1 "
                             "(default: frozen throughout)")
    parser.add_argument("--backbone-lr-scale", type=number(0, 10, above=True), metavar="F",
                        help="with --init-weights: the pretrained layers' learning rate is "
                             f"--lr times F (default {DEFAULT_BACKBONE_LR_SCALE})")
    parser.add_argument("--val-fraction", type=number(0, 1, above=True), default=0.2,
                        help="videos without a split column that validate (by URI hash)")
    parser.add_argument("--hflip", action="store_true",
                        help="augment with horizontal flips (default off: a flip turns "
                             "leftward motion or text into something else)")
    parser.add_argument("--hflip-swap", action="append", default=[], metavar="A=B",
                        help="implies --hflip: a flip turns class A into B and B into A "
                             "(left=right); repeatable, each class in one pair at most")
    # Gone (flips are opt-in now): refused with a message that says so.
    parser.add_argument("--no-hflip", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--class-balance", choices=BALANCE_MODES, default="none",
                        help="imbalanced classes: none (default); sampler (each epoch draws "
                             "videos with replacement, each class equally often); loss "
                             "(cross-entropy weighted N/(K*count) per class)")
    parser.add_argument("--select-by", choices=SELECT_BY, default="top1",
                        help="validation score that picks the epoch exported as model.pt: "
                             "top1 (default) or macro_f1 (the mean of per-class F1s)")
    parser.add_argument("--cpus-per-worker", type=number(0, 1024), default=0.0,
                        help="CPUs each worker reserves (default: a share of the cluster)")
    parser.add_argument("--decode-device", choices=["cpu", "gpu"], default="cpu",
                        help="cpu only (default): clips are decoded in CPU Ray Data tasks; "
                             "gpu (NVDEC) is for label and relabel and is refused here")
    parser.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS or local)")
    add_storage_option(parser)
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    return parser


def _swaps(items: list[str]) -> tuple[tuple[str, str], ...]:
    """--hflip-swap A=B pairs; a class swapped with itself or named in two
    pairs is contradictory (which class would its flip be?) and refused."""
    pairs: list[tuple[str, str]] = []
    for item in items:
        a, sep, b = item.partition("=")
        if not sep or not a or not b:
            raise ConfigError(f"--hflip-swap expects A=B, got {item!r}")
        if a == b:
            raise ConfigError(f"--hflip-swap {item}: a class cannot swap with itself "
                              "(classes a flip leaves alone need no --hflip-swap)")
        named = {n for pair in pairs for n in pair} & {a, b}
        if named:
            raise ConfigError(f"--hflip-swap {item}: {sorted(named)[0]!r} is already in "
                              "another pair; each class swaps with one class at most")
        pairs.append((a, b))
    return tuple(pairs)


def _hflip(args: argparse.Namespace) -> tuple[bool, tuple[tuple[str, str], ...]]:
    """(flip or not, swaps): flips are opt-in; --hflip-swap implies --hflip."""
    if args.no_hflip:
        raise ConfigError("--no-hflip is gone: flips are off by default now; --hflip (or "
                          "--hflip-swap A=B) turns them on")
    swaps = _swaps(args.hflip_swap)
    return args.hflip or bool(swaps), swaps


# ModelShape field: the flag (argparse dest) that sets it; None when not given.
_SHAPE_FLAGS = {"clip_len": "clip_len", "frame_step": "clip_step", "size": "size",
                "backbone": "backbone", "hidden_size": "hidden_size", "pool_grid": "pool_grid"}


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    if args.decode_device == "gpu":
        raise ConfigError("--decode-device gpu is not supported by train: its clips are "
                          "decoded in CPU Ray Data tasks, which hold no GPU; use "
                          "--decode-device gpu with label or relabel")
    if args.val_fraction >= 1.0:  # the parser checked the rest of every number
        raise ConfigError("--val-fraction must be below 1: some videos must train")
    chosen = {field: getattr(args, flag) for field, flag in _SHAPE_FLAGS.items()}
    shape = ModelShape(args.model, **{**arch_defaults(args.model),
                                      **{k: v for k, v in chosen.items() if v is not None}})
    lr = args.lr or (FINETUNE_LR if args.init_weights else Optimization.lr)
    optim = Optimization(epochs=args.epochs, batch_size=args.batch_size, lr=lr,
                         weight_decay=args.weight_decay, warmup=args.warmup, seed=args.seed)
    hflip, swaps = _hflip(args)
    # Ray Train workers run in their own directory: a relative local path must not follow.
    return TrainConfig(args.source, canonical_uri(args.output), shape, optim,
                       num_workers=args.num_workers, use_gpu=args.use_gpu, resume=args.resume,
                       val_fraction=args.val_fraction,
                       hflip=hflip, flip_swaps=swaps,
                       cpus_per_worker=args.cpus_per_worker, address=args.address,
                       storage=StorageOptions.parse(args.storage_option),
                       sample=SampleSpec.parse(args.sample) if args.sample else None,
                       class_balance=args.class_balance, select_by=args.select_by,
                       finetune=FineTuneFlags(args.init_weights, args.freeze,
                                              args.unfreeze_after, args.backbone_lr_scale),
                       shape_defaulted=tuple(k for k, v in chosen.items() if v is None))


def _score(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def format_summary(summary: TrainSummary) -> str:
    lines = [f"{'epoch':>5} {'train loss':>10} {'train acc':>9} {'val loss':>8} "
             f"{'val top-1':>9} {'macro-F1':>8} {'clips/s':>8}  val recall"]
    lines += [f"{r['epoch']:>5} {r['train_loss']:>10.3f} {r['train_acc']:>9.3f} "
              f"{r['val_loss']:>8.3f} {r['val_acc']:>9.3f} {_score(r.get('val_macro_f1')):>8} "
              f"{r['clips_per_s']:>8.1f}  {recall_summary(r.get('val_per_class') or [])}"
              for r in summary.history]
    if summary.init_line:
        lines.insert(0, summary.init_line)
    lines.append(f"best epoch by {summary.select_by} {summary.best_epoch}: val top-1 "
                 f"{summary.best_val_acc:.3f}, macro-F1 {_score(summary.best_macro_f1)} on "
                 f"{summary.val_videos} videos ({summary.train_videos} trained on, "
                 f"{len(summary.bad_videos)} skipped) -> {summary.model_uri}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from pipeline.training.train_run import run_training

    configure(args.verbose)
    try:
        summary = run_training(config_from_args(args))
    except (ConfigError, StorageError) as exc:
        print(f"vidlake train: error: {exc}", file=sys.stderr)
        return 2
    print(format_summary(summary))
    return 0


def main(argv: list[str] | None = None) -> int:
    return interruptible("train", lambda: run(build_parser().parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
