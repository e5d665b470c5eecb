"""Classification metrics of per-video predictions against ground truth (numpy only).

Conventions, the same as scikit-learn's with `zero_division=0`:
- a truth video with no prediction is "missing": it counts as wrong (it lowers
  accuracy and its class's recall) but lands in no column of the confusion matrix;
- precision of a class that is never predicted is 0.0, and recall of a class
  with no truth videos (only ever predicted) is 0.0; F1 is 0.0 when both are 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Evaluation:
    """Metrics over the truth videos; arrays are indexed like `classes` (sorted).

    confusion: int64 [C, C], rows = truth class, columns = predicted class.
    missing: int64 [C], truth videos of each class with no prediction.
    precision, recall, f1: float64 [C], in [0, 1]. support: int64 [C], truth
    videos per class, missing ones included (support = confusion row sum + missing).
    """

    classes: list[str]
    confusion: np.ndarray
    missing: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray
    n_ignored: int  # predicted videos absent from the truth, left out of every metric

    @property
    def videos(self) -> int:
        return int(self.support.sum())

    @property
    def correct(self) -> int:
        return int(np.trace(self.confusion))

    @property
    def n_missing(self) -> int:
        return int(self.missing.sum())

    @property
    def accuracy(self) -> float:
        """Correct / truth videos, missing ones counted as wrong."""
        return self.correct / self.videos


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator elementwise, 0.0 where the denominator is 0."""
    out = np.zeros(numerator.shape, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def evaluate(truth: dict[str, str], predicted: dict[str, str]) -> Evaluation:
    """Compare `predicted` (video uri -> label) with `truth` (uri -> label).

    Classes are the union of truth labels and the labels predicted for truth
    videos. Raises ValueError when `truth` is empty (accuracy is undefined).
    """
    if not truth:
        raise ValueError("no truth videos to evaluate")
    scored = {uri: predicted[uri] for uri in truth if uri in predicted}
    classes = sorted(set(truth.values()) | set(scored.values()))
    index = {label: i for i, label in enumerate(classes)}
    confusion = np.zeros((len(classes), len(classes)), dtype=np.int64)
    missing = np.zeros(len(classes), dtype=np.int64)
    for uri, label in truth.items():
        if uri in scored:
            confusion[index[label], index[scored[uri]]] += 1
        else:
            missing[index[label]] += 1
    hits = np.diag(confusion).astype(np.float64)
    support = confusion.sum(axis=1) + missing
    precision = _ratio(hits, confusion.sum(axis=0))
    recall = _ratio(hits, support)
    f1 = _ratio(2 * precision * recall, precision + recall)
    return Evaluation(classes=classes, confusion=confusion, missing=missing,
                      precision=precision, recall=recall, f1=f1, support=support,
                      n_ignored=len(set(predicted) - set(truth)))
