"""What leaves the validation team: subgroup cells and calibration bins below the protocol's
minimum size keep their label and lose every number, with complementary suppression so totals
do not give them away, and every number is rounded to the precision the report prints, so its
low-order bits carry nothing a model could have put there (brief, section 1; issue 14, item 1).
Used by the API and the report document alike. Pure: no Django."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

#: Decimals the report prints every metric with (reports.template_filters.num3); a vendor or
#: partner never gets more.
DISPLAY_DECIMALS = 3


def rounded(value: Any, decimals: int = DISPLAY_DECIMALS) -> Any:
    """``value`` with every float, however deeply nested, rounded to ``decimals`` decimals.
    Integers (counts), booleans, strings and None are kept as they are."""
    if value is None or isinstance(value, bool | str | numbers.Integral):
        return value
    if isinstance(value, numbers.Real):
        number = float(value)
        if not math.isfinite(number):
            return None
        return round(number, decimals) + 0.0  # + 0.0: one spelling for -0.0 and 0.0
    if isinstance(value, Mapping):
        return {key: rounded(item, decimals) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [rounded(item, decimals) for item in value]
    return value


def suppressed_cells(rows: list[dict]) -> set[tuple[str, str]]:
    """The (attribute, group) cells of a subgroup table a vendor must not see numbers for: the
    small ones (flagged ``suppressed``) and, where an attribute has exactly one small cell, its
    next smallest cell too, or the overall counts would give the small one away."""
    hidden: set[tuple[str, str]] = set()
    by_attribute: dict[str, list[dict]] = {}
    for row in rows:
        by_attribute.setdefault(row["attribute"], []).append(row)
    for attribute, cells in by_attribute.items():
        small = [r for r in cells if r.get("suppressed")]
        hidden |= {(attribute, str(r["group"])) for r in small}
        if len(small) == 1:
            others = sorted(
                (r.get("n", 0), str(r["group"])) for r in cells if not r.get("suppressed")
            )
            if others:
                hidden.add((attribute, others[0][1]))
    return hidden


def subgroups_disclosed(
    rows: list[dict], *, audience: str, table: list[dict] | None = None
) -> list[dict]:
    """`audience` 'team' sees every number; anyone else sees suppressed cells (see
    `suppressed_cells`, taken from `table` when given: the bootstrap rows follow the subgroup
    table) as labels only, and the other numbers rounded."""
    if audience == "team":
        return rows
    hidden = suppressed_cells(rows if table is None else table)
    return [
        {"attribute": r["attribute"], "group": r["group"], "suppressed": True}
        if r.get("suppressed") or (r["attribute"], str(r["group"])) in hidden
        else rounded(r)
        for r in rows
    ]


def calibration_disclosed(calibration: Mapping[str, Any], *, min_cell: int) -> dict[str, Any]:
    """A calibration section as a vendor or partner may read it: every one of the protocol's
    bins is listed (so an empty bin is indistinguishable from a small one); a bin with fewer
    than ``min_cell`` cases keeps its edges and loses its numbers, and when exactly one
    non-empty bin is small, the smallest shown bin is hidden too (the totals would give it
    away). The remaining numbers are rounded."""
    section = dict(calibration)
    bins = section.get("bins")
    if not isinstance(bins, list):
        return rounded(section)
    n_bins = int(section.get("n_bins") or len(bins))
    by_lower = {round(float(b["lower"]), 9): b for b in bins}
    edges = [i / n_bins for i in range(n_bins + 1)]
    full = [by_lower.get(round(edges[i], 9), {"n": 0}) for i in range(n_bins)]
    small = [i for i, b in enumerate(full) if 0 < b["n"] < min_cell]
    hidden = {i for i, b in enumerate(full) if b["n"] < min_cell}
    if len(small) == 1:
        shown = sorted((b["n"], i) for i, b in enumerate(full) if i not in hidden)
        if shown:
            hidden.add(shown[0][1])
    section["bins"] = [
        {"lower": edges[i], "upper": edges[i + 1], "suppressed": True}
        if i in hidden
        else {**full[i], "suppressed": False}
        for i in range(n_bins)
    ]
    section["min_cell"] = min_cell
    return rounded(section)


def roc_disclosed(
    roc: Mapping[str, Any] | None, *, n_pos: int, n_neg: int, min_cell: int
) -> dict[str, Any] | None:
    """The ROC curve as a vendor or partner may read it: only the points between which at least
    ``min_cell`` cases change side of the threshold, so no step of the curve is the label of a
    case or a few (a model that gives one chosen image the top score would otherwise read its
    label off the first step). The ends (0, 0) and (1, 1) stay; the points are rounded."""
    if not roc or not roc.get("fpr"):
        return rounded(roc)
    points = list(zip(roc["fpr"], roc["tpr"], strict=True))
    total = n_pos + n_neg

    def cases(point: tuple[float, float]) -> int:
        return round(point[1] * n_pos) + round(point[0] * n_neg)

    kept = [points[0]]
    for point in points[1:-1]:
        above = cases(point)
        if above - cases(kept[-1]) >= min_cell and total - above >= min_cell:
            kept.append(point)
    kept.append(points[-1])
    return rounded({**roc, "fpr": [p[0] for p in kept], "tpr": [p[1] for p in kept]})


def failures_disclosed(failures: Mapping[str, Any], *, min_cell: int) -> dict[str, Any]:
    """The failures table as a vendor or partner may read it: how many failed cases were
    positive and how many negative is a two-cell table; when either cell is small both lose
    their count (the total would give the other away), or a model that fails on one chosen
    image would read that image's label off it."""
    section = dict(failures)
    split = [section.get("n_failed_positive"), section.get("n_failed_negative")]
    if any(isinstance(n, int) and 0 < n < min_cell for n in split):
        section.pop("n_failed_positive", None)
        section.pop("n_failed_negative", None)
        section["label_split_suppressed"] = True
    return rounded(section)


def counts_disclosed(counts: Mapping[Any, int], *, min_cell: int) -> list[dict]:
    """A distribution for a vendor-facing card: cells with 1..min_cell-1 members keep their label
    and lose their count. When that hides exactly one cell, the next smallest is hidden too, or
    the total would give the hidden one away (complementary suppression)."""
    small = {g for g, n in counts.items() if 0 < n < min_cell}
    if len(small) == 1:
        others = sorted((n, g) for g, n in counts.items() if n > 0 and g not in small)
        if others:
            small.add(others[0][1])
    return [
        {"group": g, "suppressed": True} if g in small else {"group": g, "n": n}
        for g, n in sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        if n > 0
    ]


def independence_disclosed(section: Mapping[str, Any], *, min_cell: int) -> dict[str, Any]:
    """The independence section (validation.stats.independence) as a vendor or partner may
    read it: its split by training source follows the subgroup rule (a small group keeps its
    label only, and then so does the other: the totals would give it away), and when either
    group is a small cell the counts and share of cases from declared sources are withheld
    (``counts_suppressed``). The remaining numbers are rounded."""
    result = dict(section)
    if isinstance(result.get("split"), list):
        result["split"] = subgroups_disclosed(result["split"], audience="vendor")
    n_overlap, n_cases = result.get("n_overlap"), result.get("n_cases")
    if isinstance(n_overlap, int) and isinstance(n_cases, int):
        if any(0 < n < min_cell for n in (n_overlap, n_cases - n_overlap)):
            result.update(
                n_overlap=None,
                n_overlap_site=None,
                n_overlap_scanner=None,
                share=None,
                counts_suppressed=True,
            )
    result["min_cell"] = min_cell
    return rounded(result)


def comparison_disclosed(result: Mapping[str, Any], *, audience: str) -> dict[str, Any]:
    """A comparison run's paired result (`validation.stats.comparison.evaluate_comparison`)
    as an audience may read it: the validation team every number; anyone else what the issued
    comparison report shows, every number rounded and the subgroup differences under the
    run report's disclosure rule (a small group and, where it alone is small, its complement
    keep their names and lose their numbers)."""
    if audience == "team":
        return dict(result)
    return {
        **rounded(dict(result)),
        "subgroups": subgroups_disclosed(list(result.get("subgroups", [])), audience=audience),
    }
