"""Classification metrics of predictions against ground truth (numpy only).

One `Evaluation` scores a list of samples: videos at video level (each video's
majority label), or clips/frames at clip level (each row of the label table
against its video's truth). Conventions, the same as scikit-learn's
`classification_report(y_true, y_pred, labels=classes, zero_division=0)` with
a missing prediction as a label outside `classes`:
- a sample with no prediction is "missing": it counts as wrong (it lowers
  accuracy and its class's recall) but lands in no column of the confusion matrix;
- precision of a class that is never predicted is 0.0, and recall of a class
  with no truth samples (only ever predicted) is 0.0; F1 is 0.0 when both are 0;
- the macro average is the unweighted mean of the per-class values (F1
  included: the mean of the F1s, not the F1 of the means); the weighted
  average weights each class by its support; both are over every class, so a
  class that is only predicted counts in the macro average (as 0 recall) and
  not in the weighted one; with no samples at all every figure is 0.0;
- top-5: a sample is top-5 correct when its truth is among its 5 best labels
  (see pipeline/evaluation/predictions.py for what those are per level).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

AVERAGES = ("macro", "weighted")


@dataclass(frozen=True)
class Average:
    """One average row: over every class, weights 1 (macro) or support (weighted)."""

    name: str  # "macro" or "weighted"
    precision: float
    recall: float
    f1: float
    support: int  # every truth sample (missing ones included), as scikit-learn reports


@dataclass(frozen=True)
class Evaluation:
    """Metrics over the truth samples; arrays are indexed like `classes` (sorted).

    confusion: int64 [C, C], rows = truth class, columns = predicted class.
    missing: int64 [C], truth samples of each class with no prediction.
    precision, recall, f1: float64 [C], in [0, 1]. support: int64 [C], truth
    samples per class, missing ones included (support = confusion row sum + missing).
    top5_correct: samples whose truth is among their 5 best labels; None when
    top-5 is not available (no topk_labels, fewer than 5 a row, no scores).
    """

    classes: list[str]
    confusion: np.ndarray
    missing: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray
    n_ignored: int  # predicted samples of videos absent from the truth, left out of every metric
    top5_correct: int | None = None

    @property
    def samples(self) -> int:
        return int(self.support.sum())

    @property
    def videos(self) -> int:
        """The samples (the name from when only videos were scored)."""
        return self.samples

    @property
    def correct(self) -> int:
        return int(np.trace(self.confusion))

    @property
    def n_missing(self) -> int:
        return int(self.missing.sum())

    @property
    def accuracy(self) -> float:
        """Correct / truth samples, missing ones counted as wrong (0.0 with no samples)."""
        return self.correct / self.samples if self.samples else 0.0

    @property
    def top5_accuracy(self) -> float | None:
        """Top-5 correct / truth samples; None when top-5 is not available."""
        if self.top5_correct is None:
            return None
        return self.top5_correct / self.samples if self.samples else 0.0

    def average(self, name: str) -> Average:
        """The "macro" or "weighted" average of precision, recall and F1."""
        if name not in AVERAGES:
            raise ValueError(f"average must be one of {AVERAGES}, got {name!r}")
        weights = (np.ones(len(self.classes)) if name == "macro"
                   else self.support.astype(np.float64))
        total = float(weights.sum())

        def mean(values: np.ndarray) -> float:
            return float(np.dot(weights, values) / total) if total > 0 else 0.0

        return Average(name, mean(self.precision), mean(self.recall), mean(self.f1),
                       self.samples)

    def check(self) -> None:
        """ValueError unless every number is finite, in range and consistent:
        the guard before anything is printed or written."""
        n = len(self.classes)
        shapes = {"confusion": (self.confusion, (n, n)), "missing": (self.missing, (n,)),
                  "precision": (self.precision, (n,)), "recall": (self.recall, (n,)),
                  "f1": (self.f1, (n,)), "support": (self.support, (n,))}
        for name, (values, shape) in shapes.items():
            if values.shape != shape:
                raise ValueError(f"{name} has shape {values.shape}, expected {shape}")
        for name in ("confusion", "missing", "support"):
            if (shapes[name][0] < 0).any():
                raise ValueError(f"{name} holds a negative count")
        if not np.array_equal(self.support, self.confusion.sum(axis=1) + self.missing):
            raise ValueError("support is not the confusion row sums plus the missing samples")
        fractions = {"precision": self.precision, "recall": self.recall, "f1": self.f1}
        for name, values in fractions.items():
            if not (np.isfinite(values).all() and ((values >= 0) & (values <= 1)).all()):
                raise ValueError(f"{name} holds a value outside [0, 1]: {values.tolist()}")
        scalars = {"accuracy": self.accuracy, "top5_accuracy": self.top5_accuracy}
        for average in AVERAGES:
            row = self.average(average)
            scalars |= {f"{average} {k}": getattr(row, k) for k in ("precision", "recall", "f1")}
        for name, value in scalars.items():
            if value is not None and not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise ValueError(f"{name} is {value}, outside [0, 1]")
        if self.n_ignored < 0 or (self.top5_correct is not None
                                  and not 0 <= self.top5_correct <= self.samples):
            raise ValueError(f"counts out of range: ignored {self.n_ignored}, top-5 correct "
                             f"{self.top5_correct} of {self.samples}")


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator elementwise, 0.0 where the denominator is 0."""
    out = np.zeros(numerator.shape, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def from_counts(counts: dict[tuple[str, str | None], int], n_ignored: int = 0,
                top5_correct: int | None = None) -> Evaluation:
    """An Evaluation from {(truth label, predicted label or None for missing):
    samples}. Classes are the truth labels and the predicted ones (sorted)."""
    classes = sorted({t for t, _ in counts} | {p for _, p in counts if p is not None})
    index = {label: i for i, label in enumerate(classes)}
    confusion = np.zeros((len(classes), len(classes)), dtype=np.int64)
    missing = np.zeros(len(classes), dtype=np.int64)
    for (truth, predicted), n in counts.items():
        if n < 0:
            raise ValueError(f"negative count {n} for ({truth!r}, {predicted!r})")
        if predicted is None:
            missing[index[truth]] += n
        else:
            confusion[index[truth], index[predicted]] += n
    hits = np.diag(confusion).astype(np.float64)
    support = confusion.sum(axis=1) + missing
    precision = _ratio(hits, confusion.sum(axis=0))
    recall = _ratio(hits, support)
    f1 = _ratio(2 * precision * recall, precision + recall)
    return Evaluation(classes=classes, confusion=confusion, missing=missing,
                      precision=precision, recall=recall, f1=f1, support=support,
                      n_ignored=n_ignored, top5_correct=top5_correct)


def evaluate(truth: dict[str, str], predicted: dict[str, str],
             top5: dict[str, list[str]] | None = None) -> Evaluation:
    """Compare `predicted` (video uri -> label) with `truth` (uri -> label).

    Classes are the union of truth labels and the labels predicted for truth
    videos. `top5` (uri -> the video's 5 best labels), when given, scores
    top-5: a video without an entry is top-5 wrong. Raises ValueError when
    `truth` is empty (accuracy is undefined).
    """
    if not truth:
        raise ValueError("no truth videos to evaluate")
    counts: dict[tuple[str, str | None], int] = {}
    for uri, label in truth.items():
        key = (label, predicted.get(uri))
        counts[key] = counts.get(key, 0) + 1
    top5_correct = None if top5 is None else sum(
        label in top5.get(uri, [])[:5] for uri, label in truth.items())
    return from_counts(counts, n_ignored=len(set(predicted) - set(truth)),
                       top5_correct=top5_correct)
