"""Score a lake's predicted labels against a ground-truth manifest.

Usage:
    python -m jobs.evaluate LAKE --truth MANIFEST [--table auto|clip_labels|frame_labels]
        [--model-version V] [--output DIR] [--storage-option KEY=VALUE ...]

A video's prediction is the majority label of its rows in the table (clips or
frames; ties go to the higher summed score, then alphabetically). Every truth
video counts, whatever its split; one with no prediction is wrong ("missing").
Results go to DIR (default: LAKE) as tables queryable with `vidlake query`:
evaluation_summary, evaluation_per_class, evaluation_confusion (rows with
predicted NULL count the missing videos), plus evaluation_confusion.png.
Each run overwrites them.

Exit codes: 0 evaluated, 2 a bad flag, table, manifest or unreachable storage.
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from pipeline.errors import ConfigError, StorageError
from pipeline.storage import (
    StorageOptions,
    canonical_uri,
    filesystem,
    fs_path,
    is_remote,
    join,
    storage_errors,
)

if TYPE_CHECKING:
    from pipeline.evaluation.metrics import Evaluation

SUMMARY, PER_CLASS, CONFUSION = "evaluation_summary", "evaluation_per_class", "evaluation_confusion"
PNG_NAME = "evaluation_confusion.png"


@dataclass(frozen=True)
class EvaluationRun:
    """What was evaluated and the result."""

    table: str
    model_version: str | None
    truth: str  # canonical URI of the manifest
    evaluation: Evaluation


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="vidlake evaluate", description=__doc__,
                                               formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("lake", metavar="LAKE", help="lake root (local folder or s3://...)")
    parser.add_argument("--truth", required=True, metavar="MANIFEST",
                        help="ground truth: manifest (uri,label[,split]) or folder per class")
    parser.add_argument("--table", choices=["auto", "clip_labels", "frame_labels"],
                        default="auto", help="predictions to score (default: auto, "
                        "clip_labels if present, else frame_labels)")
    parser.add_argument("--model-version", metavar="V",
                        help="the model_version to score; required if the table holds several")
    parser.add_argument("--output", metavar="DIR", help="where results go (default: LAKE)")
    parser.add_argument("--storage-option", action="append", metavar="KEY=VALUE",
                        help="object-storage option; repeatable")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def evaluate_lake(args: argparse.Namespace, storage: StorageOptions) -> EvaluationRun:
    """Load the truth, query the lake's predictions and score them."""
    from pipeline.evaluation import predictions
    from pipeline.evaluation.metrics import evaluate
    from pipeline.query.duckdb_views import connect
    from pipeline.training.labelled import load_labelled, truth_by_uri

    truth = truth_by_uri(load_labelled(args.truth, storage))
    con = connect(args.lake, storage)
    table = predictions.choose_table(con, args.table)
    version = predictions.resolve_model_version(con, table, args.model_version)
    predicted = predictions.predicted_labels(con, table, version)
    return EvaluationRun(table, version, canonical_uri(args.truth), evaluate(truth, predicted))


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
def _write_atomic(uri: str, data: bytes, storage: StorageOptions) -> None:
    """Replace `uri` whole: readers see the old file or the new one, never a part."""
    path = fs_path(uri)
    if is_remote(uri):
        filesystem(uri, storage).pipe_file(path, data)  # one PUT: the object appears whole
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp-{uuid.uuid4().hex}"
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def write_results(result: EvaluationRun, output: str, storage: StorageOptions) -> list[str]:
    """Write the result tables (DIR/<table>/part-0.parquet) and the PNG; returns
    their URIs. StorageError when the output cannot be written."""
    import io

    import pyarrow.parquet as pq

    blobs: dict[str, bytes] = {}
    for name, table in result_tables(result, datetime.now(timezone.utc)).items():
        buffer = io.BytesIO()
        pq.write_table(table, buffer, compression="zstd")
        blobs[join(output, name, "part-0.parquet")] = buffer.getvalue()
    blobs[join(output, PNG_NAME)] = _heat_map(result.evaluation)
    try:
        for uri, data in blobs.items():
            _write_atomic(uri, data, storage)
    except storage_errors() as exc:
        raise StorageError(f"cannot write evaluation results to {output!r}: {exc}") from None
    return list(blobs)


# -- printing -------------------------------------------------------------------
def format_report(result: EvaluationRun) -> str:
    """Accuracy line, per-class precision/recall table and confusion matrix, as text."""
    ev = result.evaluation
    version = f" model_version {result.model_version}" if result.model_version else ""
    lines = [f"{result.table}{version} vs {result.truth}",
             f"accuracy {ev.accuracy:.3f} ({ev.correct}/{ev.videos} videos, "
             f"{ev.n_missing} missing)"]
    if ev.n_ignored:
        lines.append(f"ignored {ev.n_ignored} predicted videos absent from the truth")
    if ev.n_missing == ev.videos:  # almost always URIs that do not match, not a bad model
        lines.append("note: no truth video has a prediction; do the manifest's URIs match "
                     "the lake's (s3://... or absolute paths)?")
    width = max(len("label"), *(len(c) for c in ev.classes))
    lines += ["", f"{'label':<{width}}  precision  recall     f1  support"]
    lines += [f"{c:<{width}}  {p:9.3f}  {r:6.3f}  {f:5.3f}  {int(s):7d}" for c, p, r, f, s
              in zip(ev.classes, ev.precision, ev.recall, ev.f1, ev.support, strict=True)]
    return "\n".join([*lines, "", *_confusion_lines(ev)])


def _confusion_lines(ev: Evaluation) -> list[str]:
    """The confusion matrix as right-aligned text columns (rows: truth)."""
    columns = list(ev.classes) + (["(missing)"] if ev.n_missing else [])
    counts = [[*map(int, row), *([int(m)] if ev.n_missing else [])]
              for row, m in zip(ev.confusion, ev.missing, strict=True)]
    corner = "truth \\ predicted"
    first = max(len(corner), *(len(c) for c in ev.classes))
    widths = [max(len(c), *(len(str(row[j])) for row in counts)) for j, c in enumerate(columns)]
    lines = [f"{corner:<{first}}  " + "  ".join(c.rjust(w) for c, w in zip(columns, widths,
                                                                            strict=True))]
    for label, row in zip(ev.classes, counts, strict=True):
        lines.append(f"{label:<{first}}  " + "  ".join(str(n).rjust(w) for n, w
                                                       in zip(row, widths, strict=True)))
    return lines


def run(args: argparse.Namespace) -> int:
    import duckdb

    try:
        storage = StorageOptions.parse(args.storage_option)
        result = evaluate_lake(args, storage)
        written = write_results(result, args.output or args.lake, storage)
    except (ConfigError, StorageError, duckdb.Error) as exc:
        print(f"vidlake evaluate: error: {exc}", file=sys.stderr)
        return 2
    print(format_report(result))
    print("\nwrote " + "\n      ".join(written))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
