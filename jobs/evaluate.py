"""Score a lake's predicted labels against a ground-truth manifest.

Usage:
    python -m jobs.evaluate LAKE --truth MANIFEST [--table auto|clip_labels|frame_labels]
        [--model-version V] [--output DIR] [--storage-option KEY=VALUE ...]

Two levels, printed one after the other: clip level scores every row of the
table (clips or frames) of a truth video against that video's label; video
level scores each video's majority label (ties go to the higher summed
score, then alphabetically). Each prints accuracy, top-5 accuracy (rows: the
truth among the first 5 topk_labels; videos: the majority label, then the
labels with the highest topk_scores summed over the video's rows; "n/a" with
the reason when rows hold fewer than 5 topk_labels or, for videos, no
topk_scores), per-class precision, recall, F1 and support with the macro and
support-weighted averages, and the confusion matrix. Every truth video
counts, whatever its split; one with no prediction is wrong ("missing"), as
is a row with no label. Results go to DIR (default: LAKE) as tables
queryable with `vidlake query`, each with a `level` column (video, clip):
evaluation_summary, evaluation_per_class (plus "macro avg" and "weighted
avg" rows), evaluation_confusion (rows with predicted NULL count the
missing), plus evaluation_confusion.png (video level) and
evaluation_confusion_clip.png.
Each run overwrites them.

Exit codes: 0 evaluated, 2 a bad flag, table, manifest or unreachable storage.
"""

from __future__ import annotations

import argparse
import sys

from jobs.label import interruptible
from pipeline.cli.parser import OneLineParser, add_storage_option
from pipeline.errors import ConfigError, StorageError
from pipeline.evaluation.metrics import AVERAGES, Evaluation
from pipeline.evaluation.report import AVERAGE_LABELS, EvaluationRun
from pipeline.storage_options import StorageOptions


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or OneLineParser(prog="vidlake evaluate", description=__doc__,
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
    add_storage_option(parser)
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


# -- printing -------------------------------------------------------------------
def format_report(result: EvaluationRun) -> str:
    """Clip level, then video level: accuracy and top-5 lines, the per-class
    table with its averages and the confusion matrix of each, as text."""
    version = f" model_version {result.model_version}" if result.model_version else ""
    head = f"{result.table}{version} vs {result.truth}"
    clip = _level_lines(result.clip_evaluation, result.unit,
                        f"clip level: each row of {result.table} vs its video's truth label",
                        result.top5_unavailable.get("clip"))
    video = _level_lines(result.evaluation, "videos",
                         "video level: each video's majority label vs its truth label",
                         result.top5_unavailable.get("video"))
    ev = result.evaluation
    if ev.n_ignored:
        video.insert(3,
                     f"ignored {ev.n_ignored} predicted videos absent from the truth")
    if ev.n_missing == ev.videos:  # almost always URIs that do not match, not a bad model
        video.insert(2, "note: no truth video has a prediction; do the manifest's URIs "
                        "match the lake's (s3://... or absolute paths)?")
    return "\n".join([head, "", *clip, "", *video])


def _level_lines(ev: Evaluation, unit: str, title: str, no_top5: str | None) -> list[str]:
    """One level: its title, accuracy, top-5 (or why it is n/a: `no_top5`),
    ignored rows, per-class table with the macro and weighted averages,
    confusion matrix."""
    lines = [title, f"accuracy {ev.accuracy:.3f} ({ev.correct}/{ev.samples} {unit}, "
                    f"{ev.n_missing} missing)"]
    if ev.top5_accuracy is not None:
        lines.append(f"top-5 accuracy {ev.top5_accuracy:.3f} "
                     f"({ev.top5_correct}/{ev.samples} {unit})")
    else:
        lines.append(f"top-5 accuracy n/a ({no_top5 or 'not scored'})")
    if ev.n_ignored and unit != "videos":
        lines.append(f"ignored {ev.n_ignored} {unit} of videos absent from the truth")
    averages = [ev.average(name) for name in AVERAGES]
    names = [*ev.classes, *(AVERAGE_LABELS[a.name] for a in averages)]
    width = max([len("label"), *(len(c) for c in names)])
    rows = [*zip(ev.classes, ev.precision, ev.recall, ev.f1, ev.support, strict=True),
            *((AVERAGE_LABELS[a.name], a.precision, a.recall, a.f1, a.support)
              for a in averages)]
    lines += ["", f"{'label':<{width}}  precision  recall     f1  support"]
    lines += [f"{c:<{width}}  {p:9.3f}  {r:6.3f}  {f:5.3f}  {int(s):7d}"
              for c, p, r, f, s in rows]
    return [*lines, "", *_confusion_lines(ev)] if ev.classes else lines


def _confusion_lines(ev: Evaluation) -> list[str]:
    """The confusion matrix as right-aligned text columns (rows: truth)."""
    columns = list(ev.classes) + (["(missing)"] if ev.n_missing else [])
    counts = [[*map(int, row), *([int(m)] if ev.n_missing else [])]
              for row, m in zip(ev.confusion, ev.missing, strict=True)]
    corner = "truth \\ predicted"
    first = max([len(corner), *(len(c) for c in ev.classes)])
    widths = [max([len(c), *(len(str(row[j])) for row in counts)])
              for j, c in enumerate(columns)]
    lines = [f"{corner:<{first}}  " + "  ".join(c.rjust(w) for c, w in zip(columns, widths,
                                                                            strict=True))]
    for label, row in zip(ev.classes, counts, strict=True):
        lines.append(f"{label:<{first}}  " + "  ".join(str(n).rjust(w) for n, w
                                                       in zip(row, widths, strict=True)))
    return lines


def run(args: argparse.Namespace) -> int:
    import duckdb

    from pipeline.evaluation.report import evaluate_lake, write_results

    try:
        storage = StorageOptions.parse(args.storage_option)
        result = evaluate_lake(args.lake, args.truth, args.table, args.model_version, storage)
        written = write_results(result, args.output or args.lake, storage)
    except (ConfigError, StorageError, duckdb.Error) as exc:
        print(f"vidlake evaluate: error: {exc}", file=sys.stderr)
        return 2
    print(format_report(result))
    print("\nwrote " + "\n      ".join(written))
    return 0


def main(argv: list[str] | None = None) -> int:
    return interruptible("evaluate", lambda: run(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
