"""Metrics of a binary decision at the protocol's operating point, each with its interval."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._base import Interval, MetricInputError, as_labels, as_scores, check_same_length
from .proportions import likelihood_ratios, proportion_interval
from .roc import DEFAULT_AUC_INTERVAL, auc_or_note


def confusion_counts(y_true: Any, y_pred: Any) -> dict[str, int]:
    """The 2x2 table ``{"tp", "fp", "tn", "fn"}`` for labels and predictions in {0, 1}."""
    y = as_labels(y_true)
    predicted = as_labels(y_pred, name="y_pred")
    check_same_length(y_true=y, y_pred=predicted)
    return {
        "tp": int(np.sum((y == 1) & (predicted == 1))),
        "fp": int(np.sum((y == 0) & (predicted == 1))),
        "tn": int(np.sum((y == 0) & (predicted == 0))),
        "fn": int(np.sum((y == 1) & (predicted == 0))),
    }


def predict(scores: np.ndarray, threshold: float) -> np.ndarray:
    """The decision rule used throughout: predicted positive when ``score >= threshold``."""
    threshold = float(threshold)
    if not math.isfinite(threshold):
        raise MetricInputError(f"threshold must be finite, got {threshold!r}.")
    return (scores >= threshold).astype(np.int8)


def binary_metrics(
    y_true: Any,
    scores: Any,
    threshold: float,
    *,
    level: float = 0.95,
    interval: str = "wilson",
    auc_method: str = DEFAULT_AUC_INTERVAL,
) -> dict[str, Any]:
    """Sensitivity, specificity, PPV, NPV, accuracy and prevalence with binomial intervals
    (Wilson score by default, ``interval="wilson-cc"`` or ``"clopper-pearson"`` on request),
    likelihood ratios with log-method intervals (Simel et al. 1991), and the AUC with its
    DeLong-based interval (``auc_method`` as in :func:`auc_delong`).

    Returns a dict with these keys: ``sensitivity``, ``specificity``, ``ppv``, ``npv``,
    ``accuracy``, ``prevalence``, ``positive_likelihood_ratio``,
    ``negative_likelihood_ratio`` (each an :class:`Interval`; all-NaN where the denominator
    is 0), ``auc`` (an :class:`Interval`, or ``None`` when one class is absent),
    ``counts`` (``tp``, ``fp``, ``tn``, ``fn``, ``n``, ``n_pos``, ``n_neg``), ``threshold``,
    and ``notes`` (strings explaining undefined values).

    PPV, NPV and accuracy depend on the prevalence of the test set; they transfer to the
    intended-use population only when its prevalence is similar.
    """
    y = as_labels(y_true)
    s = as_scores(scores)
    n = check_same_length(y_true=y, scores=s)
    counts = confusion_counts(y, predict(s, threshold))
    tp, fp, tn, fn = counts["tp"], counts["fp"], counts["tn"], counts["fn"]
    n_pos, n_neg = tp + fn, fp + tn

    def prop(k: int, total: int) -> Interval:
        return proportion_interval(k, total, level=level, method=interval)

    lr_positive, lr_negative = likelihood_ratios(tp, fp, tn, fn, level=level)
    auc, auc_note = (
        auc_or_note(y, s, level=level, method=auc_method)
        if n
        else (None, "AUC undefined: no cases")
    )
    notes = [auc_note] if auc_note else []
    for name, denominator in (
        ("sensitivity", n_pos),
        ("specificity", n_neg),
        ("ppv", tp + fp),
        ("npv", tn + fn),
    ):
        if denominator == 0:
            notes.append(f"{name} undefined: denominator is 0")
    return {
        "sensitivity": prop(tp, n_pos),
        "specificity": prop(tn, n_neg),
        "ppv": prop(tp, tp + fp),
        "npv": prop(tn, tn + fn),
        "accuracy": prop(tp + tn, n),
        "prevalence": prop(n_pos, n),
        "positive_likelihood_ratio": lr_positive,
        "negative_likelihood_ratio": lr_negative,
        "auc": auc,
        "counts": {**counts, "n": n, "n_pos": n_pos, "n_neg": n_neg},
        "threshold": float(threshold),
        "notes": notes,
    }
