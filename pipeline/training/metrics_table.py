"""The `training_metrics` table: one row per finished epoch, in OUT/training_metrics/.

Rewritten whole after every epoch from the run's history (which the
checkpoint carries), so a resumed run never duplicates an epoch's row.
Columns added later are null in the rows of runs from before them.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from pipeline.lake.parquet_lake import parquet_bytes
from pipeline.storage import join, write_atomic
from pipeline.storage_options import StorageOptions

TRAINING_METRICS = pa.schema([
    ("epoch", pa.int32()),  # 1-based
    ("train_loss", pa.float64()),  # mean cross-entropy over training clips
    ("train_acc", pa.float64()),  # top-1 on the (augmented) training clips
    ("val_loss", pa.float64()),
    ("val_acc", pa.float64()),  # top-1 on the validation centre clips
    ("train_clips", pa.int64()),
    ("val_clips", pa.int64()),
    ("skipped", pa.int64()),  # clips whose video failed to decode
    ("clips_per_s", pa.float64()),  # training clips per second, all workers
    ("train_s", pa.float64()),  # seconds of the epoch's training pass
    ("precise_bn_s", pa.float64()),  # seconds recomputing BatchNorm statistics (rank 0)
    ("lr", pa.float64()),  # learning rate at the epoch's end (of the new layers)
    ("workers", pa.int32()),
    ("val_macro_f1", pa.float64()),  # mean of the per-class F1s (val_scores.py)
    # one entry per class with a validation clip or a prediction, sorted by label
    ("val_per_class", pa.list_(pa.struct([
        ("label", pa.string()), ("support", pa.int64()), ("precision", pa.float64()),
        ("recall", pa.float64()), ("f1", pa.float64())]))),
    ("select_by", pa.string()),  # top1 | macro_f1: the score that picks model.pt
    ("exported", pa.bool_()),  # this epoch's model became model.pt when it finished
    ("backbone_lr", pa.float64()),  # of the --init-weights layers; null without them
    ("backbone_frozen", pa.bool_()),  # --freeze backbone held this epoch; null without
])


def metrics_uri(output: str) -> str:
    return join(output, "training_metrics", "metrics.parquet")


def write_metrics(output: str, history: list[dict[str, Any]], storage: StorageOptions) -> None:
    table = pa.Table.from_pylist(
        [{name: row.get(name) for name in TRAINING_METRICS.names} for row in history],
        schema=TRAINING_METRICS)
    write_atomic(metrics_uri(output), parquet_bytes(table), storage)
