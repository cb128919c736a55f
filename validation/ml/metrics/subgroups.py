"""Per-subgroup metrics and disparities, with fairlearn's ``MetricFrame`` as the grouping engine.

Group values may be any hashable labels; ``None``, NaN and blank strings are pooled as
``"unknown"`` so that missing demographics are reported, never dropped. Every group is
tabulated; groups with fewer than ``min_cell`` cases are flagged ``suppressed`` so the report
can hide them from vendors, and are left out of disparity measures.

References
----------
- Weerts H, Dudik M, Edgar R, et al. Fairlearn: assessing and improving fairness of AI
  systems. J Mach Learn Res 2023;24(257):1-8.
- Hardt M, Price E, Srebro N. Equality of opportunity in supervised learning. NeurIPS 2016
  (equalized odds).
- Newcombe RG. Stat Med 1998;17:873-890 (interval for a difference of proportions).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from fairlearn.metrics import (
    MetricFrame,
    count,
    demographic_parity_difference,
    equalized_odds_difference,
    selection_rate,
    true_negative_rate,
    true_positive_rate,
)

from ._base import Interval, MetricInputError, as_labels, as_scores, check_same_length
from .binary import predict
from .proportions import newcombe_difference_interval, wilson_interval
from .roc import auc_or_note

UNKNOWN = "unknown"


def subgroup_table(
    y_true: Any,
    scores: Any,
    threshold: float,
    groups: Mapping[str, Any],
    *,
    min_cell: int = 10,
    level: float = 0.95,
) -> list[dict[str, Any]]:
    """One row per (attribute, group): size, prevalence, sensitivity and specificity with
    Wilson score intervals, and the DeLong AUC.

    Per-group counts and rates come from a fairlearn ``MetricFrame`` (``count``,
    ``true_positive_rate``, ``true_negative_rate``, ``selection_rate``). A rate whose
    denominator is 0 is ``None`` (fairlearn itself would report 0 there), and so is the AUC
    of a group with one class only; ``notes`` says why. Rows keep their numbers when
    ``suppressed`` (n < ``min_cell``): hiding them is the report's decision, per audience.

    Row keys: ``attribute``, ``group``, ``n``, ``n_pos``, ``n_neg``, ``prevalence``,
    ``selection_rate``, ``sensitivity``, ``specificity``, ``auc``, ``suppressed``, ``notes``.
    """
    y, s, predicted = _prepared(y_true, scores, threshold)
    rows = []
    for attribute, values in groups.items():
        labels = group_labels(values, len(y), attribute=attribute)
        by_group = _by_group(y, predicted, labels)
        for group in by_group.index:
            cell = by_group.loc[group]
            n, n_pos, n_neg = int(cell["count"]), int(cell["n_pos"]), int(cell["n_neg"])
            notes = []
            sensitivity = specificity = None
            if n_pos:
                wilson = wilson_interval(int(cell["tp"]), n_pos, level=level)
                sensitivity = _with_estimate(wilson, cell["sensitivity"])
            else:
                notes.append("sensitivity undefined: no positives")
            if n_neg:
                wilson = wilson_interval(int(cell["tn"]), n_neg, level=level)
                specificity = _with_estimate(wilson, cell["specificity"])
            else:
                notes.append("specificity undefined: no negatives")
            mask = labels == group
            auc, auc_note = auc_or_note(y[mask], s[mask], level=level)
            if auc_note:
                notes.append(auc_note)
            rows.append(
                {
                    "attribute": attribute,
                    "group": group,
                    "n": n,
                    "n_pos": n_pos,
                    "n_neg": n_neg,
                    "prevalence": float(cell["prevalence"]),
                    "selection_rate": float(cell["selection_rate"]),
                    "sensitivity": sensitivity,
                    "specificity": specificity,
                    "auc": auc,
                    "suppressed": n < min_cell,
                    "notes": notes,
                }
            )
    return rows


def fairness_summary(
    y_true: Any,
    scores: Any,
    threshold: float,
    groups: Mapping[str, Any],
    *,
    min_cell: int = 10,
    level: float = 0.95,
) -> list[dict[str, Any]]:
    """Disparities of the decision ``score >= threshold`` across the groups of each attribute.

    Only groups with at least ``min_cell`` cases and both classes are compared (listed in
    ``groups_compared``; the others in ``groups_excluded`` with the reason), because
    fairlearn counts an undefined rate as 0 and a tiny group's rates are mostly noise.
    Over the compared groups:

    - ``equalized_odds_difference`` and ``demographic_parity_difference``: fairlearn's
      between-groups, worst-case definitions.
    - ``tpr_difference`` / ``fpr_difference``: highest minus lowest group rate, with a
      Newcombe (1998) hybrid-score interval for the difference of those two groups
      (``tpr_max_group``, ``tpr_min_group``, and likewise for FPR). The interval does not
      account for the groups having been chosen as the extremes, so it is optimistic when
      there are many groups.

    With fewer than two comparable groups every measure is ``None`` and ``notes`` says why.
    """
    y, _, predicted = _prepared(y_true, scores, threshold)
    summaries = []
    for attribute, values in groups.items():
        labels = group_labels(values, len(y), attribute=attribute)
        by_group = _by_group(y, predicted, labels)
        excluded = []
        for group, cell in by_group.iterrows():
            if cell["count"] < min_cell:
                excluded.append({"group": group, "reason": f"n < {min_cell}"})
            elif cell["n_pos"] == 0 or cell["n_neg"] == 0:
                excluded.append({"group": group, "reason": "one class only"})
        excluded_names = {item["group"] for item in excluded}
        compared = by_group.loc[[g for g in by_group.index if g not in excluded_names]]
        summary: dict[str, Any] = {
            "attribute": attribute,
            "groups_compared": list(compared.index),
            "groups_excluded": excluded,
            "equalized_odds_difference": None,
            "demographic_parity_difference": None,
            "tpr_difference": None,
            "tpr_max_group": None,
            "tpr_min_group": None,
            "fpr_difference": None,
            "fpr_max_group": None,
            "fpr_min_group": None,
            "notes": [],
        }
        if len(compared) < 2:
            summary["notes"].append(
                f"disparities undefined: {len(compared)} group(s) with n >= {min_cell} "
                "and both classes"
            )
            summaries.append(summary)
            continue
        mask = np.isin(labels, compared.index)
        features = {"sensitive_features": labels[mask]}
        summary["equalized_odds_difference"] = float(
            equalized_odds_difference(y[mask], predicted[mask], **features)
        )
        summary["demographic_parity_difference"] = float(
            demographic_parity_difference(y[mask], predicted[mask], **features)
        )
        tpr = compared["sensitivity"]
        high, low = tpr.idxmax(), tpr.idxmin()
        summary["tpr_difference"] = newcombe_difference_interval(
            *_counts(compared, high, "tp", "n_pos"),
            *_counts(compared, low, "tp", "n_pos"),
            level=level,
        )
        summary["tpr_max_group"], summary["tpr_min_group"] = high, low
        fpr = 1.0 - compared["specificity"]
        high, low = fpr.idxmax(), fpr.idxmin()
        summary["fpr_difference"] = newcombe_difference_interval(
            *_counts(compared, high, "fp", "n_neg"),
            *_counts(compared, low, "fp", "n_neg"),
            level=level,
        )
        summary["fpr_max_group"], summary["fpr_min_group"] = high, low
        summaries.append(summary)
    return summaries


def group_labels(values: Any, n: int, *, attribute: str = "group") -> np.ndarray:
    """Group labels as an object array of strings; None, NaN and blanks become "unknown"."""
    if values is None:
        values = [None] * n
    elif isinstance(values, (str, bytes)):
        raise MetricInputError(f"Group attribute {attribute!r} must be a sequence, not a string.")
    labels = np.array([_label(value) for value in values], dtype=object)
    if len(labels) != n:
        raise MetricInputError(
            f"Inputs differ in length: group attribute {attribute!r} has {len(labels)} "
            f"values for {n} cases."
        )
    return labels


def _label(value: Any) -> str:
    if value is None:
        return UNKNOWN
    try:
        missing = bool(value != value)  # NaN, NaT
    except (TypeError, ValueError):  # pandas.NA refuses to be a bool
        missing = True
    text = str(value).strip()
    return UNKNOWN if missing or not text else text


def _prepared(
    y_true: Any, scores: Any, threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = as_labels(y_true)
    s = as_scores(scores)
    check_same_length(y_true=y, scores=s)
    return y, s, predict(s, threshold)


def _by_group(y: np.ndarray, predicted: np.ndarray, labels: np.ndarray) -> pd.DataFrame:
    """fairlearn ``MetricFrame.by_group`` with counts and rates, "unknown" sorted last."""
    columns = ["count", "n_pos", "n_neg", "tp", "tn", "fp", "prevalence", "selection_rate"]
    columns += ["sensitivity", "specificity"]
    if len(y) == 0:
        return pd.DataFrame(columns=columns)
    frame = MetricFrame(
        metrics={
            "count": count,
            "n_pos": _n_pos,
            "n_neg": _n_neg,
            "tp": _true_positives,
            "tn": _true_negatives,
            "fp": _false_positives,
            "prevalence": _prevalence,
            "selection_rate": selection_rate,
            "sensitivity": true_positive_rate,
            "specificity": true_negative_rate,
        },
        y_true=y,
        y_pred=predicted,
        sensitive_features=pd.Series(labels, name="group"),
    )
    by_group = frame.by_group[columns]
    order = sorted(by_group.index, key=lambda group: (group == UNKNOWN, group))
    return by_group.loc[order]


def _counts(by_group: pd.DataFrame, group: str, numerator: str, denominator: str) -> list[int]:
    return [int(by_group.loc[group, numerator]), int(by_group.loc[group, denominator])]


def _with_estimate(interval: Interval, estimate: float) -> Interval:
    # The estimate is fairlearn's rate; it equals the Wilson interval's k / n.
    return dataclasses.replace(interval, estimate=float(estimate))


def _n_pos(y_true: np.ndarray, y_pred: np.ndarray) -> int:
    return int(np.sum(y_true == 1))


def _n_neg(y_true: np.ndarray, y_pred: np.ndarray) -> int:
    return int(np.sum(y_true == 0))


def _true_positives(y_true: np.ndarray, y_pred: np.ndarray) -> int:
    return int(np.sum((y_true == 1) & (y_pred == 1)))


def _true_negatives(y_true: np.ndarray, y_pred: np.ndarray) -> int:
    return int(np.sum((y_true == 0) & (y_pred == 0)))


def _false_positives(y_true: np.ndarray, y_pred: np.ndarray) -> int:
    return int(np.sum((y_true == 0) & (y_pred == 1)))


def _prevalence(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(y_true))
