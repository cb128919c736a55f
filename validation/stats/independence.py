"""Independence of the test set from the vendor's declared training data (issue 18, item 5):
which test cases come from a site or a scanner the vendor's manifest says it trained on, and
the primary metrics split by that overlap. Pure: no Django.

The matching rule (printed in the report as ``RULE``): names are compared after folding case
and collapsing runs of white space. A test case comes from a declared training site when its
institution (or site) equals a declared site. It comes from a declared training scanner when
a declared scanner equals the case's "manufacturer model", its model alone (a declaration
naming the model only, such as "Acme DR-500"), or its manufacturer alone (a declaration
naming a manufacturer only covers every model of that manufacturer).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from validation.stats.metrics import binary_metrics, to_jsonable

RULE = (
    "Names are compared ignoring case and repeated spaces. A test case comes from a declared "
    "training source when its institution equals a declared training site, or when a "
    "declared training scanner equals its scanner's manufacturer and model together, its "
    "model alone, or its manufacturer alone (a declaration naming only a manufacturer covers "
    "all of that manufacturer's models)."
)
FROM_TRAINING = "declared training source"
INDEPENDENT = "independent"
#: The attribute name the split's rows carry, for the disclosure rule's tables.
ATTRIBUTE = "training source"


def normalised(text: Any) -> str:
    """A name as the rule compares it: case folded, white space collapsed, ends stripped."""
    return re.sub(r"\s+", " ", str(text or "")).strip().casefold()


def case_site(attributes: Mapping[str, Any]) -> str | None:
    return attributes.get("institution") or attributes.get("site") or None


def case_scanner(attributes: Mapping[str, Any]) -> str:
    """The case's scanner as the report names it: "manufacturer model" (either may be absent)."""
    parts = [attributes.get("manufacturer"), attributes.get("model")]
    return " ".join(str(p).strip() for p in parts if p and str(p).strip())


def scanner_declared(attributes: Mapping[str, Any], declared: Iterable[str]) -> bool:
    """Whether a declared scanner names this case's scanner (see ``RULE``)."""
    names = {
        normalised(case_scanner(attributes)),
        normalised(attributes.get("model")),
        normalised(attributes.get("manufacturer")),
    } - {""}
    return any(normalised(d) in names for d in declared)


def site_declared(attributes: Mapping[str, Any], declared: Iterable[str]) -> bool:
    site = normalised(case_site(attributes))
    return bool(site) and any(normalised(d) == site for d in declared)


def training_overlap(
    cases: Sequence[Mapping[str, Any]], training_data: Mapping[str, Any] | None
) -> tuple[np.ndarray, dict[str, Any]]:
    """``(mask, summary)``: for each case (its attributes), whether it comes from a declared
    training site or scanner, and the summary the report states: what was declared, the test
    sites and scanners that overlap it, the number and share of such cases, and whether the
    test set is independent (None when nothing was declared, so nothing can be judged)."""
    training = training_data or {}
    sites = [str(s) for s in training.get("sites") or []]
    scanners = [str(s) for s in training.get("scanners") or []]
    by_site = np.array([site_declared(a, sites) for a in cases], dtype=bool)
    by_scanner = np.array([scanner_declared(a, scanners) for a in cases], dtype=bool)
    mask = by_site | by_scanner
    n_overlap = int(mask.sum())
    summary = {
        "declared_sites": sites,
        "declared_scanners": scanners,
        "overlapping_sites": sorted(
            {str(case_site(a)) for a, hit in zip(cases, by_site, strict=True) if hit}
        ),
        "overlapping_scanners": sorted(
            {case_scanner(a) for a, hit in zip(cases, by_scanner, strict=True) if hit}
        ),
        "n_cases": len(cases),
        "n_overlap": n_overlap,
        "n_overlap_site": int(by_site.sum()),
        "n_overlap_scanner": int(by_scanner.sum()),
        "share": n_overlap / len(cases) if cases else None,
        "independent": (not n_overlap) if (sites or scanners) else None,
        "rule": RULE,
    }
    return mask, summary


def independence_split(
    y: np.ndarray,
    s: np.ndarray,
    from_training: np.ndarray,
    threshold: float,
    *,
    min_cell: int,
    level: float = 0.95,
    interval: str = "wilson",
    auc_method: str = "delong-logit",
) -> list[dict[str, Any]]:
    """The primary metrics (AUC, sensitivity, specificity with the protocol's intervals) on the
    scored cases from a declared training source and on the independent ones. A group with
    fewer than ``min_cell`` cases (but some) is flagged ``suppressed``, as a subgroup cell is;
    the disclosure rule (``disclosure.subgroups_disclosed``) hides the other group too then."""
    rows = []
    for group, mask in ((FROM_TRAINING, from_training), (INDEPENDENT, ~from_training)):
        n = int(mask.sum())
        n_pos = int(y[mask].sum())
        row: dict[str, Any] = {
            "attribute": ATTRIBUTE,
            "group": group,
            "n": n,
            "n_pos": n_pos,
            "n_neg": n - n_pos,
            "suppressed": 0 < n < min_cell,
            "auc": None,
            "sensitivity": None,
            "specificity": None,
            "notes": [],
        }
        if n:
            metrics = binary_metrics(
                y[mask], s[mask], threshold, level=level, interval=interval, auc_method=auc_method
            )
            row["auc"] = metrics["auc"]
            row["sensitivity"] = metrics["sensitivity"] if n_pos else None
            row["specificity"] = metrics["specificity"] if n - n_pos else None
            row["notes"] = [
                note for note in metrics["notes"] if note.startswith(("AUC", "sens", "spec"))
            ]
        rows.append(to_jsonable(row))
    return rows
