"""Validation scores per epoch, and which epoch becomes model.pt.

Per-class precision, recall and F1 follow `vidlake evaluate`'s conventions
(pipeline/evaluation/metrics.py, scikit-learn's): classes are those with a
validation clip or a prediction; macro-F1 is the mean of their F1s, so a
majority-only model on two classes scores about 0.5 however high its top-1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from pipeline.evaluation.metrics import from_counts

SELECT_BY = ("top1", "macro_f1")
SCORE_COLUMN = {"top1": "val_acc", "macro_f1": "val_macro_f1"}


def class_scores(confusion: np.ndarray, names: Sequence[str]) -> dict[str, Any]:
    """{"val_macro_f1": float, "val_per_class": [{label, support, precision, recall,
    f1}]} from confusion int [K, K] (rows: true class index, columns: predicted)."""
    counts: dict[tuple[str, str | None], int] = {
        (names[t], names[p]): int(confusion[t, p]) for t, p in zip(*np.nonzero(confusion),
                                                                    strict=True)}
    if not counts:  # no validation clip decoded: nothing to score
        return {"val_macro_f1": None, "val_per_class": []}
    scores = from_counts(counts)
    per_class = [{"label": label, "support": int(scores.support[i]),
                  "precision": float(scores.precision[i]), "recall": float(scores.recall[i]),
                  "f1": float(scores.f1[i])} for i, label in enumerate(scores.classes)]
    return {"val_macro_f1": scores.average("macro").f1, "val_per_class": per_class}


def selection_score(row: dict[str, Any], select_by: str) -> float:
    """The row's score under --select-by; -1 where it is missing (rows from
    before macro-F1 was recorded, or an epoch with no validation clip)."""
    value = row.get(SCORE_COLUMN[select_by])
    return -1.0 if value is None else float(value)


def best_epoch(history: Sequence[dict[str, Any]], select_by: str) -> tuple[float, int]:
    """(score, 1-based epoch) of the best row; the earliest wins a tie, as an
    exported model is replaced only by a strictly better one. The first row
    always beats the empty history's (-inf, 0), so epoch 1 is always exported."""
    best = (-math.inf, 0)
    for row in history:
        score = selection_score(row, select_by)
        if score > best[0]:
            best = (score, int(row["epoch"]))
    return best


def recall_summary(per_class: Sequence[dict[str, Any]], most: int = 8) -> str:
    """'recall left 0.90 right 0.10' for the epoch line; past `most` classes,
    only the `most` lowest (the ones an imbalance hurts)."""
    shown = sorted(per_class, key=lambda c: c["recall"])[:most] if len(per_class) > most \
        else list(per_class)
    lowest = " (lowest)" if len(per_class) > most else ""
    return "recall" + lowest + " " + " ".join(f"{c['label']} {c['recall']:.2f}" for c in shown)
