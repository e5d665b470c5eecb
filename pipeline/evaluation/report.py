"""An evaluation of a lake against ground truth: its result tables and PNG.

Written to DIR/<table>/part-0.parquet (evaluation_summary,
evaluation_per_class, evaluation_confusion) and DIR/evaluation_confusion.png,
each replaced whole on every evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from pipeline.errors import StorageError
from pipeline.evaluation.metrics import Evaluation
from pipeline.lake.parquet_lake import parquet_bytes
from pipeline.storage import canonical_uri, join, write_atomic
from pipeline.storage_options import StorageOptions
from pipeline.storage_problems import storage_errors

SUMMARY, PER_CLASS, CONFUSION = "evaluation_summary", "evaluation_per_class", "evaluation_confusion"
PNG_NAME = "evaluation_confusion.png"


@dataclass(frozen=True)
class EvaluationRun:
    """What was evaluated and the result."""

    table: str
    model_version: str | None
    truth: str  # canonical URI of the manifest
    evaluation: Evaluation



def evaluate_lake(lake: str, truth_source: str, table: str, model_version: str | None,
                  storage: StorageOptions) -> EvaluationRun:
    """Load the truth, query the lake's predictions and score them."""
    from pipeline.evaluation import predictions
    from pipeline.evaluation.metrics import evaluate
    from pipeline.query.duckdb_views import connect
    from pipeline.training.labelled import load_labelled, truth_by_uri

    truth = truth_by_uri(load_labelled(truth_source, storage))
    con = connect(lake, storage)
    chosen = predictions.choose_table(con, table)
    version = predictions.resolve_model_version(con, chosen, model_version)
    predicted = predictions.predicted_labels(con, chosen, version)
    return EvaluationRun(chosen, version, canonical_uri(truth_source), evaluate(truth, predicted))


# -- result tables --------------------------------------------------------------
def result_tables(result: EvaluationRun, evaluated_at: datetime) -> dict[str, Any]:
    """The three result tables (name -> pyarrow.Table) of one evaluation."""
    import pyarrow as pa

    ev = result.evaluation
    summary = pa.table({
        "table": pa.array([result.table], pa.string()),
        "model_version": pa.array([result.model_version], pa.string()),
        "videos": pa.array([ev.videos], pa.int64()),
        "correct": pa.array([ev.correct], pa.int64()),
        "missing": pa.array([ev.n_missing], pa.int64()),
        "accuracy": pa.array([ev.accuracy], pa.float64()),
        "truth": pa.array([result.truth], pa.string()),
        "evaluated_at": pa.array([evaluated_at], pa.timestamp("us", tz="UTC")),
    })
    per_class = pa.table({
        "label": pa.array(ev.classes, pa.string()),
        "precision": pa.array(ev.precision, pa.float64()),
        "recall": pa.array(ev.recall, pa.float64()),
        "f1": pa.array(ev.f1, pa.float64()),
        "support": pa.array(ev.support, pa.int64()),
    })
    return {SUMMARY: summary, PER_CLASS: per_class, CONFUSION: _confusion_table(ev)}


def _confusion_table(ev: Evaluation) -> Any:
    """Every (truth, predicted) pair with its count, zeros included, then one
    (truth, NULL) row per class with missing videos: counts sum to the videos."""
    import pyarrow as pa

    rows: list[tuple[str, str | None, int]] = [
        (t, p, int(ev.confusion[i, j])) for i, t in enumerate(ev.classes)
        for j, p in enumerate(ev.classes)]
    rows += [(t, None, int(n)) for t, n in zip(ev.classes, ev.missing, strict=True) if n]
    truth, predicted, count = zip(*rows, strict=True)
    return pa.table({"truth": pa.array(truth, pa.string()),
                     "predicted": pa.array(predicted, pa.string()),
                     "count": pa.array(count, pa.int64())})


def _heat_map(ev: Evaluation) -> bytes:
    """The confusion PNG, with a "(missing)" column when videos lack a prediction."""
    import numpy as np

    from pipeline.evaluation.confusion_png import confusion_png

    if not ev.n_missing:
        return confusion_png(ev.confusion, ev.classes, ev.classes)
    counts = np.concatenate([ev.confusion, ev.missing[:, None]], axis=1)
    return confusion_png(counts, ev.classes, [*ev.classes, "(missing)"])


# -- writing --------------------------------------------------------------------
def write_results(result: EvaluationRun, output: str, storage: StorageOptions) -> list[str]:
    """Write the result tables (DIR/<table>/part-0.parquet) and the PNG; returns
    their URIs. StorageError when the output cannot be written."""
    blobs = {join(output, name, "part-0.parquet"): parquet_bytes(table) for name, table
             in result_tables(result, datetime.now(timezone.utc)).items()}
    blobs[join(output, PNG_NAME)] = _heat_map(result.evaluation)
    try:
        for uri, data in blobs.items():
            write_atomic(uri, data, storage)
    except storage_errors() as exc:
        raise StorageError(f"cannot write evaluation results to {output!r}: {exc}") from None
    return list(blobs)
