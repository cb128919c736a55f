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

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from fairlearn.metrics import MetricFrame

from ._base import MetricInputError, as_labels, as_scores, check_same_length
from .binary import predict
from .multiplicity import two_proportion_p_value
from .proportions import newcombe_difference_interval, proportion_interval
from .roc import DEFAULT_AUC_INTERVAL, auc_or_note

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

    Per-group counts come from a fairlearn ``MetricFrame`` (one metric: the group's 2x2
    cells), rates from the counts. A rate whose denominator is 0 is ``None`` (fairlearn's
    own rate functions would report 0 there), and so is the AUC
    of a group with one class only; ``notes`` says why. Rows keep their numbers when
    ``suppressed`` (n < ``min_cell``): hiding them is the report's decision, per audience.

    Row keys: ``attribute``, ``group``, ``n``, ``n_pos``, ``n_neg``, ``prevalence``,
    ``selection_rate``, ``sensitivity``, ``specificity``, ``auc``, ``suppressed``, ``notes``.
    """
    return subgroup_results(y_true, scores, threshold, groups, min_cell=min_cell, level=level)[0]


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
      between-groups, worst-case definitions (from the same group cells; the tests hold
      them equal to fairlearn's functions).
    - ``tpr_difference`` / ``fpr_difference``: highest minus lowest group rate, with a
      Newcombe (1998) hybrid-score interval for the difference of those two groups
      (``tpr_max_group``, ``tpr_min_group``, and likewise for FPR). The interval does not
      account for the groups having been chosen as the extremes, so it is optimistic when
      there are many groups. ``tpr_p_value`` / ``fpr_p_value``: the pooled two-proportion
      z-test of the same two groups (same caveat), for multiplicity adjustment.

    With fewer than two comparable groups every measure is ``None`` and ``notes`` says why.
    """
    return subgroup_results(y_true, scores, threshold, groups, min_cell=min_cell, level=level)[1]


def subgroup_results(
    y_true: Any,
    scores: Any,
    threshold: float,
    groups: Mapping[str, Any],
    *,
    min_cell: int = 10,
    level: float = 0.95,
    interval: str = "wilson",
    auc_method: str = DEFAULT_AUC_INTERVAL,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(subgroup_table rows, fairness_summary rows)`` from one grouping pass per attribute;
    the table's rates and AUCs with the protocol's interval methods (``interval`` as in
    :func:`proportion_interval`, ``auc_method`` as in :func:`auc_delong`)."""
    methods = {"interval": interval, "auc_method": auc_method}
    y, s, predicted = _prepared(y_true, scores, threshold)
    rows, summaries = [], []
    for attribute, values in groups.items():
        labels = group_labels(values, len(y), attribute=attribute)
        by_group = _by_group(y, predicted, labels)
        rows += _table_rows(
            attribute, by_group, y, s, labels, min_cell=min_cell, level=level, **methods
        )
        summaries.append(_fairness_row(attribute, by_group, min_cell=min_cell, level=level))
    return rows, summaries


def _table_rows(
    attribute,
    by_group,
    y,
    s,
    labels,
    *,
    min_cell: int,
    level: float,
    interval: str = "wilson",
    auc_method: str = DEFAULT_AUC_INTERVAL,
) -> list[dict]:
    rows = []
    for group in by_group.index:
        cell = by_group.loc[group]
        n, n_pos, n_neg = int(cell["count"]), int(cell["n_pos"]), int(cell["n_neg"])
        notes = []
        sensitivity = specificity = None
        if n_pos:
            sensitivity = proportion_interval(int(cell["tp"]), n_pos, level=level, method=interval)
        else:
            notes.append("sensitivity undefined: no positives")
        if n_neg:
            specificity = proportion_interval(int(cell["tn"]), n_neg, level=level, method=interval)
        else:
            notes.append("specificity undefined: no negatives")
        mask = labels == group
        auc, auc_note = auc_or_note(y[mask], s[mask], level=level, method=auc_method)
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


def _fairness_row(attribute, by_group, *, min_cell: int, level: float) -> dict[str, Any]:
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
        "tpr_p_value": None,
        "tpr_max_group": None,
        "tpr_min_group": None,
        "fpr_difference": None,
        "fpr_p_value": None,
        "fpr_max_group": None,
        "fpr_min_group": None,
        "notes": [],
    }
    if len(compared) < 2:
        summary["notes"].append(
            f"disparities undefined: {len(compared)} group(s) with n >= {min_cell} and both classes"
        )
        return summary
    spread = {k: float(compared[k].max() - compared[k].min()) for k in _RATES}
    summary["equalized_odds_difference"] = max(spread["sensitivity"], spread["fpr"])
    summary["demographic_parity_difference"] = spread["selection_rate"]
    for rate, column, cell, denominator in (
        ("tpr", "sensitivity", "tp", "n_pos"),
        ("fpr", "fpr", "fp", "n_neg"),
    ):
        high, low = compared[column].idxmax(), compared[column].idxmin()
        counts = (*_counts(compared, high, cell, denominator),)
        counts += (*_counts(compared, low, cell, denominator),)
        summary[f"{rate}_difference"] = newcombe_difference_interval(*counts, level=level)
        summary[f"{rate}_p_value"] = two_proportion_p_value(*counts)
        summary[f"{rate}_max_group"], summary[f"{rate}_min_group"] = high, low
    return summary


def group_labels(values: Any, n: int, *, attribute: str = "group") -> np.ndarray:
    """Group labels as an object array of strings; None, NaN and blanks become "unknown"."""
    if values is None:
        values = [None] * n
    elif isinstance(values, (str, bytes)):
        raise MetricInputError(f"Group attribute {attribute!r} must be a sequence, not a string.")
    codes, uniques = pd.factorize(pd.Series(list(values), dtype=object), use_na_sentinel=False)
    labels = np.array([_label(value) for value in uniques], dtype=object)[codes]
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
    """Counts and rates per group, "unknown" sorted last.

    fairlearn's ``MetricFrame`` does the grouping, with one metric that returns the group's
    2x2 cells: MetricFrame converts its inputs element by element for every metric it
    evaluates (~0.2 s per metric at 100,000 cases), so ten metrics cost ten times one. The
    rates follow from the cells; the tests hold them, and the disparities, equal to
    fairlearn's own ``true_positive_rate``, ``selection_rate``,
    ``equalized_odds_difference`` and ``demographic_parity_difference``."""
    if len(y) == 0:
        return pd.DataFrame(columns=[*_CELLS, *_RATES])
    frame = MetricFrame(
        metrics={"cells": _cells},
        y_true=y,
        y_pred=predicted,
        sensitive_features=pd.Series(labels, name="group"),
    )
    cells = frame.by_group["cells"]
    by_group = pd.DataFrame(cells.tolist(), index=cells.index, columns=list(_CELLS))
    count, n_pos, n_neg = by_group["count"], by_group["n_pos"], by_group["n_neg"]
    with np.errstate(divide="ignore", invalid="ignore"):
        by_group["prevalence"] = n_pos / count
        by_group["selection_rate"] = (by_group["tp"] + by_group["fp"]) / count
        by_group["sensitivity"] = by_group["tp"] / n_pos
        by_group["specificity"] = by_group["tn"] / n_neg
        by_group["fpr"] = by_group["fp"] / n_neg
    order = sorted(by_group.index, key=lambda group: (group == UNKNOWN, group))
    return by_group.loc[order]


_CELLS = ("count", "n_pos", "n_neg", "tp", "tn", "fp")
_RATES = ("prevalence", "selection_rate", "sensitivity", "specificity", "fpr")


def _cells(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[int, ...]:
    """(count, n_pos, n_neg, tp, tn, fp) of one group."""
    positive = y_true == 1
    predicted = y_pred == 1
    n_pos = int(positive.sum())
    tp = int((positive & predicted).sum())
    fp = int(predicted.sum()) - tp
    n_neg = len(y_true) - n_pos
    return (len(y_true), n_pos, n_neg, tp, n_neg - fp, fp)


def _counts(by_group: pd.DataFrame, group: str, numerator: str, denominator: str) -> list[int]:
    return [int(by_group.loc[group, numerator]), int(by_group.loc[group, denominator])]
