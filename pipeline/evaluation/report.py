"""An evaluation of a lake against ground truth: its result tables and PNGs.

Written to DIR/<table>/part-0.parquet (evaluation_summary,
evaluation_per_class, evaluation_confusion), DIR/evaluation_confusion.png
(video level) and DIR/evaluation_confusion_clip.png (clip level), each
replaced whole on every evaluation. Every table has a `level` column, "video"
or "clip", and holds the video-level rows first (what the tables held before
clip level existed). evaluation_per_class ends each level with two average
rows: label "macro avg" / "weighted avg", `average` "macro" / "weighted"
(NULL on the class rows).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa

from pipeline.errors import StorageError
from pipeline.evaluation.metrics import AVERAGES, Evaluation
from pipeline.lake.parquet_lake import parquet_bytes
from pipeline.storage import canonical_uri, join, write_atomic
from pipeline.storage_options import StorageOptions
from pipeline.storage_problems import storage_errors

SUMMARY, PER_CLASS, CONFUSION = "evaluation_summary", "evaluation_per_class", "evaluation_confusion"
PNG_NAME = "evaluation_confusion.png"  # video level
CLIP_PNG_NAME = "evaluation_confusion_clip.png"
LEVELS = ("video", "clip")  # the order of the rows in every table
AVERAGE_LABELS = {"macro": "macro avg", "weighted": "weighted avg"}  # scikit-learn's names

# The first columns of each table are the ones written before clip level
# existed, in the same order and types; the later ones were added.
SUMMARY_SCHEMA = pa.schema([
    ("table", pa.string()), ("model_version", pa.string()), ("videos", pa.int64()),
    ("correct", pa.int64()), ("missing", pa.int64()), ("accuracy", pa.float64()),
    ("truth", pa.string()), ("evaluated_at", pa.timestamp("us", tz="UTC")),
    ("level", pa.string()), ("samples", pa.int64()), ("ignored", pa.int64()),
    ("top5_correct", pa.int64()), ("top5_accuracy", pa.float64())])
PER_CLASS_SCHEMA = pa.schema([
    ("label", pa.string()), ("precision", pa.float64()), ("recall", pa.float64()),
    ("f1", pa.float64()), ("support", pa.int64()),
    ("level", pa.string()), ("average", pa.string())])
CONFUSION_SCHEMA = pa.schema([
    ("truth", pa.string()), ("predicted", pa.string()), ("count", pa.int64()),
    ("level", pa.string())])


@dataclass(frozen=True)
class EvaluationRun:
    """What was evaluated and the result at both levels."""

    table: str
    model_version: str | None
    truth: str  # canonical URI of the manifest
    evaluation: Evaluation  # video level: each truth video's majority label
    clip_evaluation: Evaluation  # clip level: each row of a truth video
    shortest_topk: int | None = None  # fewest topk_labels a labelled row holds
    # {level: why it has no top-5}, for each level whose top-5 is not reported
    top5_unavailable: dict[str, str] = field(default_factory=dict)

    @property
    def unit(self) -> str:
        """What a clip-level sample is: a row of the table."""
        return "frames" if self.table == "frame_labels" else "clips"

    def levels(self) -> dict[str, Evaluation]:
        """{"video": ..., "clip": ...}, in LEVELS order."""
        return {"video": self.evaluation, "clip": self.clip_evaluation}


def evaluate_lake(lake: str, truth_source: str, table: str, model_version: str | None,
                  storage: StorageOptions) -> EvaluationRun:
    """Load the truth, query the lake's predictions and score them at both
    levels; ValueError if a figure comes out of range (a bug, not bad input)."""
    from pipeline.evaluation import predictions
    from pipeline.evaluation.metrics import evaluate, from_counts
    from pipeline.query.duckdb_views import connect
    from pipeline.training.labelled import load_labelled, truth_by_uri

    truth = truth_by_uri(load_labelled(truth_source, storage))
    con = connect(lake, storage)
    chosen = predictions.choose_table(con, table)
    version = predictions.resolve_model_version(con, chosen, model_version)
    topk = predictions.has_topk(con, chosen)
    clips = predictions.clip_counts(con, chosen, truth, version,
                                    predictions.TOP_K if topk else None)
    unavailable = top5_unavailable(topk, clips.shortest_topk,
                                   topk and predictions.has_topk_scores(con, chosen, version))
    top5 = (None if "video" in unavailable
            else predictions.top_labels(con, chosen, version))
    run = EvaluationRun(
        chosen, version, canonical_uri(truth_source),
        evaluate(truth, predictions.predicted_labels(con, chosen, version), top5),
        from_counts(clips.counts, clips.ignored,
                    None if "clip" in unavailable else clips.top_k_correct),
        clips.shortest_topk, unavailable)
    for evaluation in run.levels().values():
        evaluation.check()
    return run


def top5_unavailable(has_topk: bool, shortest_topk: int | None,
                     has_scores: bool) -> dict[str, str]:
    """{level: reason} for each level where top-5 cannot be scored honestly.

    Clip level needs every labelled row to hold at least 5 `topk_labels`
    (`shortest_topk`: the fewest one holds; None: no labelled row); video level
    needs that too, and `topk_scores` on every labelled row to rank a video's
    labels. Fewer than 5 labels is reported as n/a, never as a top-k below 5.
    """
    from pipeline.evaluation.predictions import TOP_K

    if not has_topk:
        reason = "the table has no topk_labels"
        return {"video": reason, "clip": reason}
    if shortest_topk is not None and shortest_topk < TOP_K:
        reason = (f"rows hold as few as {shortest_topk} topk_labels: labelled with "
                  f"--top-k below {TOP_K}, or by a model with fewer classes")
        return {"video": reason, "clip": reason}
    if not has_scores:
        return {"video": "rows lack topk_scores to rank a video's labels"}
    return {}


# -- result tables --------------------------------------------------------------
def result_tables(result: EvaluationRun, evaluated_at: datetime) -> dict[str, Any]:
    """The three result tables (name -> pyarrow.Table) of one evaluation, each
    with the video-level rows, then the clip-level ones."""
    videos = result.evaluation.samples  # the truth videos, whatever the level
    summary = [{"table": result.table, "model_version": result.model_version,
                "videos": videos, "correct": ev.correct, "missing": ev.n_missing,
                "accuracy": ev.accuracy, "truth": result.truth, "evaluated_at": evaluated_at,
                "level": level, "samples": ev.samples, "ignored": ev.n_ignored,
                "top5_correct": ev.top5_correct, "top5_accuracy": ev.top5_accuracy}
               for level, ev in result.levels().items()]
    per_class = [row for level, ev in result.levels().items()
                 for row in _per_class_rows(level, ev)]
    confusion = [row for level, ev in result.levels().items()
                 for row in _confusion_rows(level, ev)]
    return {SUMMARY: pa.Table.from_pylist(summary, schema=SUMMARY_SCHEMA),
            PER_CLASS: pa.Table.from_pylist(per_class, schema=PER_CLASS_SCHEMA),
            CONFUSION: pa.Table.from_pylist(confusion, schema=CONFUSION_SCHEMA)}


def _per_class_rows(level: str, ev: Evaluation) -> list[dict[str, Any]]:
    """One row per class, then the macro and the weighted average."""
    rows: list[dict[str, Any]] = [
        {"label": c, "precision": float(p), "recall": float(r), "f1": float(f),
         "support": int(s), "level": level, "average": None}
        for c, p, r, f, s in zip(ev.classes, ev.precision, ev.recall, ev.f1, ev.support,
                                 strict=True)]
    for name in AVERAGES:
        avg = ev.average(name)
        rows.append({"label": AVERAGE_LABELS[name], "precision": avg.precision,
                     "recall": avg.recall, "f1": avg.f1, "support": avg.support,
                     "level": level, "average": name})
    return rows


def _confusion_rows(level: str, ev: Evaluation) -> list[dict[str, Any]]:
    """Every (truth, predicted) pair with its count, zeros included, then one
    (truth, NULL) row per class with missing samples: counts sum to the samples."""
    rows = [{"truth": t, "predicted": p, "count": int(ev.confusion[i, j]), "level": level}
            for i, t in enumerate(ev.classes) for j, p in enumerate(ev.classes)]
    return rows + [{"truth": t, "predicted": None, "count": int(n), "level": level}
                   for t, n in zip(ev.classes, ev.missing, strict=True) if n]


def _heat_map(ev: Evaluation) -> bytes:
    """The confusion PNG, with a "(missing)" column when samples lack a prediction."""
    import numpy as np

    from pipeline.evaluation.confusion_png import confusion_png

    if not ev.n_missing:
        return confusion_png(ev.confusion, ev.classes, ev.classes)
    counts = np.concatenate([ev.confusion, ev.missing[:, None]], axis=1)
    return confusion_png(counts, ev.classes, [*ev.classes, "(missing)"])


# -- writing --------------------------------------------------------------------
def write_results(result: EvaluationRun, output: str, storage: StorageOptions) -> list[str]:
    """Write the result tables (DIR/<table>/part-0.parquet) and the PNGs; returns
    their URIs. StorageError when the output cannot be written."""
    blobs = {join(output, name, "part-0.parquet"): parquet_bytes(table) for name, table
             in result_tables(result, datetime.now(timezone.utc)).items()}
    blobs[join(output, PNG_NAME)] = _heat_map(result.evaluation)
    blobs[join(output, CLIP_PNG_NAME)] = _heat_map(result.clip_evaluation)
    try:
        for uri, data in blobs.items():
            write_atomic(uri, data, storage)
    except storage_errors() as exc:
        raise StorageError(f"cannot write evaluation results to {output!r}: {exc}") from None
    return list(blobs)
