"""Statistics engine for validation runs: pure numpy/scipy (and fairlearn for subgroups).

Conventions used throughout: label 1 is the positive class, a higher score means more likely
positive, and a case is predicted positive when ``score >= threshold``. Every interval names
its method so reports can print it. See each module for the papers the methods follow; the
tests reproduce published values (pROC's aSAH examples, the FDA 2007 guidance).
"""

from ._base import Interval, MetricInputError, to_jsonable
from .binary import binary_metrics, confusion_counts
from .proportions import (
    clopper_pearson_interval,
    likelihood_ratios,
    newcombe_difference_interval,
    proportion_interval,
    wilson_interval,
)
from .roc import AucResult, PairedAucResult, auc_delong, delong_paired, roc_points
from .subgroups import fairness_summary, group_labels, subgroup_table

__all__ = [
    "AucResult",
    "Interval",
    "MetricInputError",
    "PairedAucResult",
    "auc_delong",
    "binary_metrics",
    "clopper_pearson_interval",
    "confusion_counts",
    "delong_paired",
    "fairness_summary",
    "group_labels",
    "likelihood_ratios",
    "newcombe_difference_interval",
    "proportion_interval",
    "roc_points",
    "subgroup_table",
    "to_jsonable",
    "wilson_interval",
]
