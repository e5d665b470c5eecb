"""Per-class validation scores and the epoch --select-by exports."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from pipeline.training.val_scores import best_epoch, class_scores, recall_summary

NAMES = ["left", "right", "up"]


def test_class_scores_from_a_confusion_matrix():
    # rows: true class; 10 left (9 right), 2 right (1 right), no up, 1 left predicted up
    confusion = np.array([[8, 1, 1], [1, 1, 0], [0, 0, 0]])
    scores = class_scores(confusion, NAMES)
    by_label = {c["label"]: c for c in scores["val_per_class"]}
    assert by_label["left"] == {"label": "left", "support": 10, "precision": 8 / 9,
                                "recall": 0.8, "f1": pytest.approx(2 * (8 / 9) * 0.8 /
                                                                   (8 / 9 + 0.8))}
    assert (by_label["right"]["recall"], by_label["right"]["precision"]) == (0.5, 0.5)
    # "up" is only predicted: it counts in the macro average with F1 0 (scikit-learn)
    assert by_label["up"] == {"label": "up", "support": 0, "precision": 0.0, "recall": 0.0,
                              "f1": 0.0}
    macro = (by_label["left"]["f1"] + 0.5 + 0.0) / 3
    assert scores["val_macro_f1"] == pytest.approx(macro)
    assert class_scores(np.zeros((3, 3), np.int64), NAMES) == {"val_macro_f1": None,
                                                              "val_per_class": []}


def test_a_majority_only_model_has_high_top1_and_low_macro_f1():
    scores = class_scores(np.array([[20, 0], [1, 0]]), NAMES[:2])
    assert [c["recall"] for c in scores["val_per_class"]] == [1.0, 0.0]
    assert scores["val_macro_f1"] == pytest.approx((2 * 20 / 21 / (20 / 21 + 1)) / 2)


HISTORY: list[dict[str, Any]] = [
    {"epoch": 1, "val_acc": 0.95, "val_macro_f1": 0.49},  # majority only: best top-1
    {"epoch": 2, "val_acc": 0.90, "val_macro_f1": 0.70},
    {"epoch": 3, "val_acc": 0.93, "val_macro_f1": 0.80},  # best macro-F1
    {"epoch": 4, "val_acc": 0.94, "val_macro_f1": 0.80},  # a tie keeps the earlier epoch
]


def test_select_by_picks_the_epoch_with_the_best_score():
    assert best_epoch(HISTORY, "top1") == (0.95, 1)
    assert best_epoch(HISTORY, "macro_f1") == (0.80, 3)
    assert best_epoch([], "macro_f1")[1] == 0
    # rows without macro-F1 (older runs, or no validation clip) never win, but
    # the first epoch is always exported
    old: list[dict[str, Any]] = [{"epoch": 1, "val_acc": 0.5},
                                 {"epoch": 2, "val_acc": 0.6, "val_macro_f1": None}]
    assert best_epoch(old, "macro_f1") == (-1.0, 1)
    assert best_epoch([*old, HISTORY[1]], "macro_f1") == (0.70, 2)


def test_recall_summary_shows_the_lowest_classes_past_a_limit():
    per_class = [{"label": n, "recall": r} for n, r in zip("abcd", [0.9, 0.1, 0.5, 1.0],
                                                           strict=True)]
    assert recall_summary(per_class) == "recall a 0.90 b 0.10 c 0.50 d 1.00"
    assert recall_summary(per_class, most=2) == "recall (lowest) b 0.10 c 0.50"
